package dlm

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/replicad/replicad/dlm/engine"
	"github.com/replicad/replicad/dlm/locktable"
)

// Mode, Flags, SBFlags and Result are the lock table's types.
type (
	Mode    = locktable.Mode
	Flags   = locktable.Flags
	SBFlags = locktable.SBFlags
	Result  = locktable.Result
)

// Request asks for a new lock.
type Request struct {
	Name  string // resource name, 1..64 bytes (any bytes)
	Mode  Mode
	Flags Flags
	LVB   []byte // with VALBLK: the lockspace's LVB length, or nil for zeros
	// OnComplete, if set, receives every completion of the lock (the
	// kernel's AST), in order, from the lockspace's dispatcher goroutine.
	OnComplete func(*Lock, Completion)
	// OnBlocking, if set, receives blocking callbacks (the kernel's BAST):
	// another request waits for a mode incompatible with this lock's.
	OnBlocking func(*Lock, Mode)
	// Owner holds the lock; nil means the lockspace's in-process owner.
	Owner *Owner
}

// Completion is the outcome of a lock, convert or unlock request.
type Completion struct {
	Result Result  // granted, would-block, deadlock, cancelled, unlocked
	Mode   Mode    // the lock's granted mode now (IV once it is gone)
	Flags  SBFlags // DEMOTED, VALNOTVALID, ALTMODE
	LVB    []byte  // the lock's LVB (VALBLK)
	LVBSeq uint32
	Final  bool // the lock no longer exists
}

// Err maps the result to this package's errors (nil for granted and for
// unlocked).
func (c Completion) Err() error {
	switch c.Result {
	case locktable.ResultGranted, locktable.ResultUnlocked:
		return nil
	case locktable.ResultWouldBlock:
		return ErrWouldBlock
	case locktable.ResultDeadlock:
		return ErrDeadlock
	case locktable.ResultCancelled:
		return ErrCancelled
	}
	return fmt.Errorf("%w: result %v", ErrInvalid, c.Result)
}

type waitKind uint8

const (
	waitOp waitKind = iota + 1 // a lock or convert request
	waitUnlock
)

type waiter struct {
	kind waitKind
	ch   chan Completion
}

// waitChans recycles the channels of synchronous calls. Every waiter's
// channel receives at most one completion (a waiter is removed from its
// lock when it is sent one), so a channel whose completion was received is
// empty for good and can serve another call.
var waitChans = sync.Pool{New: func() any { return make(chan Completion, 1) }}

func waitChan() chan Completion { return waitChans.Get().(chan Completion) }

// Lock is a handle on one lock.
type Lock struct {
	ls   *Lockspace
	id   uint32
	name string

	// queued counts this lock's callbacks handed to the dispatcher and
	// not yet delivered; while it is zero, a callback that runs no user
	// code is delivered at once (see Lockspace.post).
	queued atomic.Int32

	mu struct {
		sync.Mutex
		owner      *Owner
		persistent bool
		onComplete func(*Lock, Completion)
		onBlocking func(*Lock, Mode)
		mode       Mode
		waiters    []waiter
		waitBuf    [1]waiter // waiters' first backing array
		gone       error     // set once the lock no longer exists
	}
}

// ID returns the lock's id on this node.
func (l *Lock) ID() uint32 { return l.id }

// Name returns the resource name.
func (l *Lock) Name() string { return l.name }

// Lockspace returns the lock's lockspace.
func (l *Lock) Lockspace() *Lockspace { return l.ls }

// Mode returns the granted mode as of the last completion delivered.
func (l *Lock) Mode() Mode {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.mode
}

// LockAsync requests a lock; its outcome arrives at r.OnComplete. With the
// ORPHAN flag it adopts an orphaned PERSISTENT lock on the same resource
// held in r.Mode instead (its completion reports it granted).
func (ls *Lockspace) LockAsync(r Request) (*Lock, error) {
	return ls.lock(r, nil)
}

// Lock requests a lock and waits for the outcome. If ctx ends first the
// request is cancelled (it may still be granted in the meantime).
func (ls *Lockspace) Lock(ctx context.Context, r Request) (*Lock, Completion, error) {
	ch := waitChan()
	lk, err := ls.lock(r, ch)
	if err != nil {
		waitChans.Put(ch)
		return nil, Completion{}, err
	}
	c, err := lk.wait(ctx, ch, true)
	if err != nil {
		return lk, c, err
	}
	return lk, c, opErr(c)
}

// opErr is the error of a lock or convert request's completion.
func opErr(c Completion) error {
	if c.Result == locktable.ResultUnlocked {
		return ErrUnlocked
	}
	return c.Err()
}

func (ls *Lockspace) lock(r Request, ch chan Completion) (*Lock, error) {
	owner := r.Owner
	if owner == nil {
		owner = ls.def
	}
	if r.Flags&locktable.Orphan != 0 {
		return ls.adopt(r, owner, ch)
	}
	if err := owner.check(); err != nil {
		return nil, err
	}
	lk := &Lock{ls: ls, name: r.Name}
	lk.mu.owner, lk.mu.persistent = owner, r.Flags&locktable.Persistent != 0
	lk.mu.onComplete, lk.mu.onBlocking = r.OnComplete, r.OnBlocking
	lk.mu.mode = locktable.IV
	lk.mu.waiters = lk.mu.waitBuf[:0]
	if ch != nil {
		lk.mu.waiters = append(lk.mu.waiters, waiter{waitOp, ch})
	}
	// registered first: a final completion may be delivered before step
	// returns, and removes it again
	owner.add(lk)
	err := ls.step(func(e *engine.Engine) error {
		id, err := e.Lock(r.Name, r.Mode, r.Flags, r.LVB, r.OnBlocking != nil)
		if err != nil {
			return err
		}
		lk.id = id
		ls.mu.locks[id] = lk
		return nil
	})
	if err != nil {
		owner.remove(lk)
		return nil, err
	}
	return lk, nil
}

// adopt hands an orphaned PERSISTENT lock to a new owner (the kernel's
// dlm_user_adopt_orphan).
func (ls *Lockspace) adopt(r Request, owner *Owner, ch chan Completion) (*Lock, error) {
	if err := owner.check(); err != nil {
		return nil, err
	}
	ls.mu.Lock()
	var found, wrongMode *Lock
	for _, id := range slices.Sorted(mapsKeys(ls.mu.orphans)) {
		lk := ls.mu.orphans[id]
		if lk.name != r.Name {
			continue
		}
		if lk.Mode() == r.Mode {
			found = lk
			break
		}
		wrongMode = lk
	}
	if found == nil {
		ls.mu.Unlock()
		if wrongMode != nil {
			return nil, fmt.Errorf("%w: %q is held %v", ErrOrphanMode, r.Name, wrongMode.Mode())
		}
		return nil, fmt.Errorf("%w: %q", ErrNoOrphan, r.Name)
	}
	delete(ls.mu.orphans, found.id)
	found.mu.Lock()
	found.mu.owner = owner
	found.mu.persistent = true
	found.mu.onComplete, found.mu.onBlocking = r.OnComplete, r.OnBlocking
	if ch != nil {
		found.mu.waiters = append(found.mu.waiters, waiter{waitOp, ch})
	}
	mode := found.mu.mode
	found.mu.Unlock()
	// the adoption is the request's one completion
	ls.post(found, engine.Callback{LkID: found.id, Kind: engine.Completion, Result: locktable.ResultGranted, Mode: mode})
	ls.mu.Unlock()
	owner.add(found)
	return found, nil
}

func mapsKeys(m map[uint32]*Lock) func(func(uint32) bool) {
	return func(yield func(uint32) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// ConvertAsync changes the lock's mode; the outcome arrives at OnComplete.
func (l *Lock) ConvertAsync(mode Mode, flags Flags, lvb []byte) error {
	return l.convert(mode, flags, lvb, nil)
}

// Convert changes the lock's mode and waits for the outcome; if ctx ends
// first the conversion is cancelled.
func (l *Lock) Convert(ctx context.Context, mode Mode, flags Flags, lvb []byte) (Completion, error) {
	ch := waitChan()
	if err := l.convert(mode, flags, lvb, ch); err != nil {
		waitChans.Put(ch)
		return Completion{}, err
	}
	c, err := l.wait(ctx, ch, true)
	if err != nil {
		return c, err
	}
	return c, opErr(c)
}

func (l *Lock) convert(mode Mode, flags Flags, lvb []byte, ch chan Completion) error {
	return l.ls.step(func(e *engine.Engine) error {
		if err := l.goneErr(); err != nil {
			return err
		}
		if err := e.Convert(l.id, mode, flags&^locktable.Convert, lvb); err != nil {
			return err
		}
		if ch != nil {
			l.addWaiter(waiter{waitOp, ch})
		}
		return nil
	})
}

// UnlockAsync releases the lock (FORCEUNLOCK also while a request is
// pending); the outcome arrives at OnComplete.
func (l *Lock) UnlockAsync(flags Flags, lvb []byte) error {
	return l.unlock(flags, lvb, nil)
}

// Unlock releases the lock and waits until it is gone.
func (l *Lock) Unlock(ctx context.Context, flags Flags, lvb []byte) error {
	if flags&locktable.Cancel != 0 {
		// the cancelled operation's own completion reports the outcome
		return l.Cancel()
	}
	ch := waitChan()
	if err := l.unlock(flags, lvb, ch); err != nil {
		waitChans.Put(ch)
		return err
	}
	_, err := l.wait(ctx, ch, false)
	return err
}

func (l *Lock) unlock(flags Flags, lvb []byte, ch chan Completion) error {
	if flags&locktable.Cancel != 0 {
		return l.Cancel()
	}
	return l.ls.step(func(e *engine.Engine) error {
		if err := l.goneErr(); err != nil {
			return err
		}
		if err := e.Unlock(l.id, flags, lvb); err != nil {
			return err
		}
		if ch != nil {
			l.addWaiter(waiter{waitUnlock, ch})
		}
		return nil
	})
}

// Cancel cancels the lock's pending request or conversion, whose
// completion then reports cancelled (or its own result, if it finished
// first). With nothing pending it does nothing, as the kernel does.
func (l *Lock) Cancel() error {
	return l.ls.step(func(e *engine.Engine) error {
		if err := l.goneErr(); err != nil {
			return err
		}
		return e.Cancel(l.id)
	})
}

func (l *Lock) goneErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.gone != nil {
		return fmt.Errorf("%w (%v)", ErrUnknownLock, l.mu.gone)
	}
	return nil
}

func (l *Lock) addWaiter(w waiter) {
	l.mu.Lock()
	l.mu.waiters = append(l.mu.waiters, w)
	l.mu.Unlock()
}

// wait waits for a synchronous request's completion; if ctx ends first and
// cancel is set, the request is cancelled and its outcome still awaited.
// The channel goes back to the pool once its completion is received.
func (l *Lock) wait(ctx context.Context, ch chan Completion, cancel bool) (Completion, error) {
	select {
	case c := <-ch:
		waitChans.Put(ch)
		return c, nil
	case <-ctx.Done():
	}
	if cancel {
		if err := l.Cancel(); err == nil {
			select {
			case c := <-ch:
				waitChans.Put(ch)
				if c.Result == locktable.ResultCancelled {
					return c, ctx.Err()
				}
				return c, nil
			case <-l.ls.n.ctx.Done():
			}
		}
	}
	return Completion{}, ctx.Err()
}

// quiet reports whether delivering a callback of this kind runs no user
// code: the lock has no callback function for it, only (perhaps) a
// synchronous caller waiting. A function can only be set again under the
// lockspace's lock, which the caller holds.
func (l *Lock) quiet(kind engine.CallbackKind) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if kind == engine.Blocking {
		return l.mu.onBlocking == nil
	}
	return l.mu.onComplete == nil
}

// deliver runs on the dispatcher goroutine, or under the lockspace's lock
// for a quiet callback (see Lockspace.post).
func (l *Lock) deliver(cb engine.Callback) {
	l.mu.Lock()
	if cb.Kind == engine.Blocking {
		f := l.mu.onBlocking
		l.mu.Unlock()
		if f != nil {
			f(l, cb.Mode)
		}
		return
	}
	c := Completion{Result: cb.Result, Mode: cb.Mode, Flags: cb.SB, LVB: cb.LVB, LVBSeq: cb.LVBSeq, Final: cb.Final}
	l.mu.mode = cb.Mode
	var buf [2]waiter
	wake := buf[:0]
	switch {
	case cb.Result == locktable.ResultUnlocked:
		wake = append(wake, l.mu.waiters...) // supersedes pending requests too
		l.mu.waiters = l.mu.waiters[:0]
	default:
		for i, w := range l.mu.waiters {
			if w.kind == waitOp {
				wake = append(wake, w)
				l.mu.waiters = slices.Delete(l.mu.waiters, i, i+1)
				break
			}
		}
	}
	if cb.Final {
		l.mu.gone = endedError{cb.Result}
		wake = append(wake, l.mu.waiters...)
		l.mu.waiters = nil
	}
	f := l.mu.onComplete
	owner := l.mu.owner
	l.mu.Unlock()
	if cb.Final && owner != nil {
		owner.remove(l)
	}
	if f != nil {
		f(l, c)
	}
	for _, w := range wake {
		if w.kind == waitOp && cb.Result == locktable.ResultUnlocked {
			w.ch <- Completion{Result: locktable.ResultUnlocked, Mode: c.Mode, Final: true}
			continue
		}
		w.ch <- c
	}
}

// endedError is why a lock that had its final completion no longer
// exists. It is formatted only when asked for: every unlock ends a lock.
type endedError struct{ result Result }

func (e endedError) Error() string { return fmt.Sprintf("lock ended: %v", e.result) }

// abandon ends a lock without a completion (the lockspace was left or the
// node closed); synchronous waiters get err.
func (l *Lock) abandon(err error) {
	l.mu.Lock()
	l.mu.gone = err
	wake := l.mu.waiters
	l.mu.waiters = nil
	owner := l.mu.owner
	l.mu.Unlock()
	if owner != nil {
		owner.remove(l)
	}
	for _, w := range wake {
		select {
		case w.ch <- Completion{Result: locktable.ResultUnlocked, Mode: locktable.IV, Final: true}:
		default:
		}
	}
}
