package replication

import (
	"sync"
	"sync/atomic"
	"testing"
)

// Overlapping ranges never run at once; disjoint ones do.
func TestRangeLockExcludesOverlaps(t *testing.T) {
	l := newRangeLock()
	var inside [16]atomic.Int32
	var wg sync.WaitGroup
	var bad atomic.Bool
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				first := int64((g + i) % 14)
				l.lock(first*4096, 3*4096)
				for b := first; b < first+3; b++ {
					if inside[b].Add(1) != 1 {
						bad.Store(true)
					}
				}
				for b := first; b < first+3; b++ {
					inside[b].Add(-1)
				}
				l.unlock(first*4096, 3*4096)
			}
		}(g)
	}
	wg.Wait()
	if bad.Load() {
		t.Fatal("two holders of overlapping ranges were inside at once")
	}
	l.lock(0, 4096)
	done := make(chan struct{})
	go func() { l.lock(4096, 4096); close(done) }()
	<-done // a disjoint range is not blocked
}
