package dlm

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/replicad/replicad/dlm/engine"
	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/dlm/wire"
)

// LockspaceConfig are a lockspace's options; they must be the same on every
// node that joins it.
type LockspaceConfig struct {
	LVBLen int `mapstructure:"lvb-len" json:"lvb_len"` // 32 or 64; 0 means 32
}

// ReleaseForce is how Leave treats remaining locks (the kernel's
// dlm_release_lockspace force levels).
type ReleaseForce int

// The release-force levels.
const (
	ReleaseIfUnused   ReleaseForce = 0 // refuse if this node holds or masters any lock
	ReleaseIfNoLocal  ReleaseForce = 1 // refuse if this node holds locks of its own
	ReleaseAll        ReleaseForce = 2 // drop every lock and leave
	ReleaseForcedStop ReleaseForce = 3 // drop everything and stop without waiting for the peers
)

// Lockspace is a joined lockspace.
type Lockspace struct {
	n      *Node
	name   string
	lvbLen int
	disp   *dispatcher
	def    *Owner
	ready  chan struct{} // closed once locking is first enabled
	// leaving is readable without mu, so that the node can check it under
	// its own lock (the lock order is ls.mu before n.mu).
	leaving atomic.Bool

	mu struct {
		sync.Mutex
		e        *engine.Engine
		locks    map[uint32]*Lock
		orphans  map[uint32]*Lock
		gone     bool   // shut down: no engine calls
		ledger   uint64 // the engine's LedgerVersion last passed to the node
		ready    bool
		leftDone chan struct{}
	}
}

// JoinLockspace joins a lockspace (creating it in the cluster if no node
// has it). It returns at once; the lockspace runs once recovery with the
// other members completes (see WaitRunning). Requests made before then wait.
// Joining a lockspace this node is still leaving waits for the leave.
func (n *Node) JoinLockspace(ctx context.Context, name string, opts LockspaceConfig) (*Lockspace, error) {
	if opts.LVBLen == 0 {
		opts.LVBLen = 32
	}
	for {
		n.mu.Lock()
		if n.mu.closed {
			n.mu.Unlock()
			return nil, ErrClosed
		}
		old := n.mu.ls[name]
		if old == nil {
			break
		}
		if !old.isLeaving() {
			n.mu.Unlock()
			if old.lvbLen != opts.LVBLen {
				return nil, fmt.Errorf("%w: %q has %d-byte LVBs", ErrJoined, name, old.lvbLen)
			}
			return old, nil
		}
		n.mu.Unlock()
		select {
		case <-old.leftDone():
		case <-ctx.Done():
			return nil, fmt.Errorf("joining %q: waiting for the previous leave: %w", name, ctx.Err())
		}
	}
	n.mu.nextInc++
	inc := n.mu.nextInc
	cfg := engine.DefaultConfig()
	cfg.Self, cfg.Incarnation, cfg.NodeInc, cfg.Lockspace, cfg.LVBLen = n.cfg.NodeID, inc, n.inc, name, opts.LVBLen
	log := n.log.With("lockspace", name)
	cfg.Logf = func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) }
	e, err := engine.New(cfg)
	if err != nil {
		n.mu.Unlock()
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	ls := &Lockspace{n: n, name: name, lvbLen: opts.LVBLen, ready: make(chan struct{})}
	ls.mu.e = e
	ls.mu.locks = map[uint32]*Lock{}
	ls.mu.orphans = map[uint32]*Lock{}
	ls.disp = newDispatcher()
	ls.def = &Owner{n: n, name: "in-process"}
	ls.def.locks = map[*Lock]bool{}
	n.mu.ls[name] = ls
	n.wg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		ls.disp.run()
	}()
	ls.setCluster(n.clusterState())
	n.log.Info("joined lockspace", "lockspace", name, "lvb-len", opts.LVBLen, "incarnation", inc)
	return ls, nil
}

// Name returns the lockspace's name.
func (ls *Lockspace) Name() string { return ls.name }

// LVBLen returns the lockspace's LVB length.
func (ls *Lockspace) LVBLen() int { return ls.lvbLen }

// WaitRunning waits until locking is enabled (recovery with the other
// members is complete).
func (ls *Lockspace) WaitRunning(ctx context.Context) error {
	select {
	case <-ls.ready:
		return nil
	case <-ctx.Done():
		st := ls.Status()
		return fmt.Errorf("lockspace %q is %s (%s): %w", ls.name, st.State, st.Detail, ctx.Err())
	}
}

// Status returns the lockspace's state (running, wait quorum, wait
// fencing, recovering).
func (ls *Lockspace) Status() engine.Status {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	st := ls.mu.e.Status()
	if ls.leaving.Load() {
		st.State = "leaving"
	}
	return st
}

// Dump returns the lockspace's resources and locks as this node sees them.
func (ls *Lockspace) Dump() engine.Dump {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.mu.e.Dump()
}

func (ls *Lockspace) isLeaving() bool { return ls.leaving.Load() }

func (ls *Lockspace) leftDone() <-chan struct{} {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.mu.leftDone == nil {
		ls.mu.leftDone = make(chan struct{})
	}
	return ls.mu.leftDone
}

// step runs f on the engine and moves its outputs to the network and the
// dispatcher, in order, while still holding the lock (neither blocks).
func (ls *Lockspace) step(f func(e *engine.Engine) error) error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.mu.gone {
		return ErrLeft
	}
	err := f(ls.mu.e)
	ls.flushLocked()
	return err
}

func (ls *Lockspace) flushLocked() {
	e := ls.mu.e
	for _, o := range e.Outbox() {
		ls.n.send(o.To, o.Env)
	}
	for _, cb := range e.Callbacks() {
		lk := ls.mu.locks[cb.LkID]
		if lk == nil {
			continue
		}
		if cb.Final {
			delete(ls.mu.locks, cb.LkID)
			delete(ls.mu.orphans, cb.LkID)
		}
		ls.post(lk, cb)
	}
	if v := e.LedgerVersion(); v != ls.mu.ledger {
		ls.n.learnLedger(e.FailedLedger(), e.FencedLedger())
		ls.mu.ledger = v
	}
	if !ls.mu.ready && e.Running() {
		ls.mu.ready = true
		close(ls.ready)
	}
	if ls.leaving.Load() && (e.LeaveDone() || ls.mu.gone) {
		ls.finishLeaveLocked()
	}
}

// post delivers a lock's callback, in order with its earlier ones. One
// that runs no user code (a synchronous Lock, Convert or Unlock waiting for
// its completion, a lock without a blocking callback) is delivered here and
// now, when none of the lock's callbacks is still queued: the waiter wakes
// without a trip through the dispatcher goroutine. The rest go to the
// dispatcher, as user callbacks must not run under the lockspace's lock.
// The caller holds ls.mu.
func (ls *Lockspace) post(lk *Lock, cb engine.Callback) {
	if lk.queued.Load() == 0 && lk.quiet(cb.Kind) {
		lk.deliver(cb)
		return
	}
	lk.queued.Add(1)
	ls.disp.push(event{lk: lk, cb: cb})
}

func (ls *Lockspace) receive(env *wire.Envelope) {
	ls.step(func(e *engine.Engine) error { e.Receive(env); return nil })
}

func (ls *Lockspace) setCluster(cs ClusterState) {
	ls.step(func(e *engine.Engine) error { e.SetCluster(cs); return nil })
}

func (ls *Lockspace) tick() {
	ls.step(func(e *engine.Engine) error { e.Tick(); return nil })
}

// Leave leaves the lockspace with the given release-force level and waits
// (until ctx ends) for the other members to acknowledge. Locks still held
// are dropped without callbacks; the survivors purge them without fencing.
func (ls *Lockspace) Leave(ctx context.Context, force ReleaseForce) error {
	ls.mu.Lock()
	if ls.leaving.Load() || ls.mu.gone {
		ls.mu.Unlock()
		return ErrLeft
	}
	e := ls.mu.e
	st := e.Status()
	remote := 0
	e.MasterCopies(func(string, *locktable.Lock) { remote++ })
	switch {
	case force == ReleaseIfUnused && (st.Locks > 0 || remote > 0):
		ls.mu.Unlock()
		return fmt.Errorf("%w: lockspace %q has %d local locks and masters %d locks (use a higher release-force level)", ErrBusy, ls.name, st.Locks, remote)
	case force == ReleaseIfNoLocal && st.Locks > 0:
		ls.mu.Unlock()
		return fmt.Errorf("%w: lockspace %q has %d local locks (use a higher release-force level)", ErrBusy, ls.name, st.Locks)
	}
	ls.leaving.Store(true)
	if ls.mu.leftDone == nil {
		ls.mu.leftDone = make(chan struct{})
	}
	done := ls.mu.leftDone
	e.Leave()
	for _, lk := range ls.mu.locks {
		lk.abandon(ErrLeft)
	}
	ls.mu.locks = map[uint32]*Lock{}
	ls.mu.orphans = map[uint32]*Lock{}
	if force == ReleaseForcedStop {
		ls.mu.gone = true
	}
	ls.flushLocked()
	ls.mu.Unlock()
	ls.n.log.Info("leaving lockspace", "lockspace", ls.name, "force", force)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		ls.mu.Lock()
		ls.mu.gone = true
		ls.finishLeaveLocked()
		pending := e.LeavePending()
		ls.mu.Unlock()
		return fmt.Errorf("leaving %q: nodes %v did not acknowledge; they will see this node as failed: %w", ls.name, pending, ctx.Err())
	}
}

// finishLeaveLocked forgets the lockspace; the node answers for it as not
// joined, with an incarnation newer than the engine's.
func (ls *Lockspace) finishLeaveLocked() {
	n := ls.n
	n.mu.Lock()
	if n.mu.ls[ls.name] == ls {
		delete(n.mu.ls, ls.name)
		n.mu.nextInc++
		n.mu.respInc[ls.name] = n.mu.nextInc
	}
	n.mu.Unlock()
	ls.mu.gone = true
	select {
	case <-ls.mu.leftDone:
	default:
		close(ls.mu.leftDone)
	}
	ls.disp.stop()
}

// shutdown stops the lockspace without leaving, when the node closes.
func (ls *Lockspace) shutdown() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.mu.gone = true
	for _, lk := range ls.mu.locks {
		lk.abandon(ErrClosed)
	}
	ls.disp.stop()
}
