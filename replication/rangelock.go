package replication

import "sync"

// rangeLock serialises operations on overlapping byte ranges. A replicated
// write holds its range from queueing to the peers until its local write
// is done, and a resync read holds its range from reading until its data is
// queued: so for any block, the order in which the peer receives writes and
// resync data is the order the local disk saw them, and two overlapping
// writes reach every replica in the same order.
type rangeLock struct {
	mu   sync.Mutex
	held []span
	cond *sync.Cond
}

type span struct{ off, end int64 }

func newRangeLock() *rangeLock {
	l := &rangeLock{}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// lock waits until [off, off+n) overlaps no held range, then holds it.
func (l *rangeLock) lock(off, n int64) {
	s := span{off, off + n}
	l.mu.Lock()
	for l.overlapsLocked(s) {
		l.cond.Wait()
	}
	l.held = append(l.held, s)
	l.mu.Unlock()
}

func (l *rangeLock) overlapsLocked(s span) bool {
	for _, h := range l.held {
		if h.off < s.end && s.off < h.end {
			return true
		}
	}
	return false
}

// unlock releases a range taken with lock.
func (l *rangeLock) unlock(off, n int64) {
	l.mu.Lock()
	for i, h := range l.held {
		if h.off == off && h.end == off+n {
			l.held[i] = l.held[len(l.held)-1]
			l.held = l.held[:len(l.held)-1]
			break
		}
	}
	l.mu.Unlock()
	l.cond.Broadcast()
}
