package dlm

import (
	"fmt"
	"sync"

	"github.com/replicad/replicad/dlm/locktable"
)

// Owner holds locks on behalf of one user: the in-process owner of a
// lockspace, or one local client connection. Closing an owner releases its
// locks, except PERSISTENT ones, which become orphans for a later request
// with the ORPHAN flag to adopt.
type Owner struct {
	n    *Node
	name string

	mu     sync.Mutex
	locks  map[*Lock]bool
	closed bool
}

// NewOwner returns an owner (one per local client connection).
func (n *Node) NewOwner(name string) *Owner {
	return &Owner{n: n, name: name, locks: map[*Lock]bool{}}
}

func (o *Owner) check() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return fmt.Errorf("%w: owner %q closed", ErrLeft, o.name)
	}
	return nil
}

func (o *Owner) add(l *Lock) {
	o.mu.Lock()
	o.locks[l] = true
	o.mu.Unlock()
}

func (o *Owner) remove(l *Lock) {
	o.mu.Lock()
	delete(o.locks, l)
	o.mu.Unlock()
}

// Locks returns the owner's locks.
func (o *Owner) Locks() []*Lock {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]*Lock, 0, len(o.locks))
	for l := range o.locks {
		out = append(out, l)
	}
	return out
}

// Close releases the owner's locks (force-unlocking pending ones) and
// orphans its PERSISTENT ones. Their callbacks are no longer delivered.
func (o *Owner) Close() {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	locks := o.locks
	o.locks = map[*Lock]bool{}
	o.mu.Unlock()
	for l := range locks {
		l.mu.Lock()
		persistent := l.mu.persistent
		l.mu.owner = nil
		l.mu.onComplete, l.mu.onBlocking = nil, nil
		waiters := l.mu.waiters
		l.mu.waiters = nil
		l.mu.Unlock()
		for _, w := range waiters {
			select {
			case w.ch <- Completion{Result: locktable.ResultCancelled, Mode: locktable.IV}:
			default:
			}
		}
		if persistent {
			l.ls.orphan(l)
			continue
		}
		if err := l.UnlockAsync(locktable.ForceUnlock, nil); err != nil {
			o.n.log.Debug("releasing lock of closed owner", "owner", o.name, "lock", l.id, "err", err)
		}
	}
}

// orphan keeps a PERSISTENT lock whose owner went away.
func (ls *Lockspace) orphan(l *Lock) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.mu.locks[l.id] == l {
		ls.mu.orphans[l.id] = l
	}
}

// Orphans returns the lockspace's orphaned PERSISTENT locks.
func (ls *Lockspace) Orphans() []*Lock {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	out := make([]*Lock, 0, len(ls.mu.orphans))
	for _, l := range ls.mu.orphans {
		out = append(out, l)
	}
	return out
}
