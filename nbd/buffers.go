package nbd

import (
	"math/bits"
	"sync"
)

// Payload buffers come from per-size-class free lists (powers of two from
// 4 KiB to 256 MiB). Unlike sync.Pool, the lists survive garbage
// collections: with 1 MiB payloads a sync.Pool is emptied every few
// milliseconds and each miss allocates and zeroes a fresh megabyte. Each
// list is bounded (about 64 MiB per class, at most 1024 buffers), so idle
// memory stays bounded too. The lists are stacks: the buffer freed last,
// still in the CPU's cache, is the next one handed out (a FIFO cycles
// through every buffer the list ever held: 64 MiB of 1 MiB payloads
// evicts the caches on every pass).
const (
	minClass   = 12
	numClasses = 28 - minClass + 1
	classBytes = 64 << 20
)

type freeList struct {
	mu   sync.Mutex
	bufs [][]byte
	max  int
}

var freeLists [numClasses]freeList

func init() {
	for c := range freeLists {
		freeLists[c].max = max(2, min(1024, classBytes>>(c+minClass)))
	}
}

func sizeClass(n uint32) int {
	if n <= 1<<minClass {
		return 0
	}
	return bits.Len32(n-1) - minClass
}

// getBuf returns a buffer of length n (at most 256 MiB).
func getBuf(n uint32) []byte {
	c := sizeClass(n)
	l := &freeLists[c]
	l.mu.Lock()
	if k := len(l.bufs); k > 0 {
		b := l.bufs[k-1]
		l.bufs[k-1] = nil
		l.bufs = l.bufs[:k-1]
		l.mu.Unlock()
		return b[:n]
	}
	l.mu.Unlock()
	return make([]byte, n, 1<<(c+minClass))
}

// putBuf returns a buffer from getBuf; others are dropped.
func putBuf(b []byte) {
	if cap(b) < 1<<minClass {
		return
	}
	c := sizeClass(uint32(cap(b)))
	if c >= numClasses || cap(b) != 1<<(c+minClass) {
		return
	}
	l := &freeLists[c]
	l.mu.Lock()
	if len(l.bufs) < l.max {
		l.bufs = append(l.bufs, b[:cap(b)])
	}
	l.mu.Unlock()
}
