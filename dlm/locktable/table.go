package locktable

import (
	"fmt"
	"slices"
)

// Status is the queue a lock is on.
type Status uint8

// The lock states (the kernel's DLM_LKSTS_*).
const (
	StatusNone       Status = 0 // not on any queue
	StatusWaiting    Status = 1 // new request, not yet granted
	StatusGranted    Status = 2
	StatusConverting Status = 3 // granted in GrMode, waiting for RqMode
)

func (s Status) String() string {
	switch s {
	case StatusNone:
		return "none"
	case StatusWaiting:
		return "waiting"
	case StatusGranted:
		return "granted"
	case StatusConverting:
		return "converting"
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Result is the outcome of an operation, as reported in its completion.
type Result uint8

// The results. Queued is not a completion: it tells a requesting node that
// its request waits and a Grant event will follow.
const (
	ResultGranted         Result = 1 // 0 in the kernel
	ResultQueued          Result = 2 // -EINPROGRESS
	ResultWouldBlock      Result = 3 // -EAGAIN (NOQUEUE miss)
	ResultDeadlock        Result = 4 // -EDEADLK (conversion deadlock)
	ResultCancelled       Result = 5 // -DLM_ECANCEL
	ResultUnlocked        Result = 6 // -DLM_EUNLOCK
	ResultNothingToCancel Result = 7 // cancel found nothing pending (the kernel's silent -EBUSY)
)

func (r Result) String() string {
	switch r {
	case ResultGranted:
		return "granted"
	case ResultQueued:
		return "queued"
	case ResultWouldBlock:
		return "would-block"
	case ResultDeadlock:
		return "deadlock"
	case ResultCancelled:
		return "cancelled"
	case ResultUnlocked:
		return "unlocked"
	case ResultNothingToCancel:
		return "nothing-to-cancel"
	}
	return fmt.Sprintf("Result(%d)", uint8(r))
}

// Lock is the master copy of one lock.
type Lock struct {
	ID       LockID
	Inc      uint64 // incarnation of the owner node's process, for purges
	GrMode   Mode   // granted mode, IV if none
	RqMode   Mode   // requested mode while waiting or converting, else IV
	Status   Status
	Flags    Flags   // flags of the current request (unlock and cancel add theirs)
	SB       SBFlags // status flags for the next completion
	LVB      []byte  // the holder's copy of the LVB (nil unless VALBLK)
	LVBSeq   uint32
	HighBast Mode // highest mode this lock was BASTed for since its last grant
	WantBast bool // the holder has a blocking callback

	lvbOut bool // the last grant returned the resource's LVB
}

// Resource is one resource's master state: its queues and its LVB.
type Resource struct {
	name       string
	granted    []*Lock // ordered by granted mode, highest first
	converting []*Lock // FIFO unless HEADQUE
	waiting    []*Lock // FIFO unless HEADQUE
	byID       map[LockID]*Lock

	lvb         []byte // nil until the first write
	lvbSeq      uint32
	valNotValid bool

	// recovery state (the kernel's RSB_NEW_MASTER2, RSB_RECOVER_CONVERT,
	// RSB_RECOVER_LVB_INVAL and RSB_RECOVER_GRANT)
	newMaster      bool
	recoverConvert bool
	lvbInval       bool
	recoverGrant   bool
}

// Reply is the outcome of an operation for the lock that asked.
type Reply struct {
	Result Result
	Mode   Mode    // the lock's granted mode after the operation (IV if none)
	SB     SBFlags // status flags
	LVB    []byte  // the resource's LVB, when the grant returns it; else nil
	LVBSeq uint32
}

// EventKind tells a grant from a blocking callback.
type EventKind uint8

// The event kinds.
const (
	EventGrant EventKind = 1 // an asynchronous grant of a queued request or conversion
	EventBast  EventKind = 2 // a blocking callback to a holder
)

func (k EventKind) String() string {
	switch k {
	case EventGrant:
		return "grant"
	case EventBast:
		return "bast"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is something an operation caused for a lock other than the caller's
// (or, for NODLCKWT, a BAST to the caller's own converting lock).
type Event struct {
	Kind   EventKind
	Lock   LockID
	Mode   Mode // grant: the granted mode; bast: the mode a request is blocked on
	SB     SBFlags
	LVB    []byte // grant: the resource's LVB if returned
	LVBSeq uint32
}

// Table holds the resources a node masters.
type Table struct {
	lvbLen int
	res    map[string]*Resource
	spare  *Resource // the last resource released, reused by the next new one
}

// New returns an empty table for a lockspace whose LVBs are lvbLen bytes.
func New(lvbLen int) *Table {
	return &Table{lvbLen: lvbLen, res: make(map[string]*Resource)}
}

// LVBLen returns the lockspace's LVB length.
func (t *Table) LVBLen() int { return t.lvbLen }

// Len returns the number of resources that have locks.
func (t *Table) Len() int { return len(t.res) }

// Has reports whether the table holds locks on name.
func (t *Table) Has(name string) bool { return t.res[name] != nil }

// Names returns the names of the resources with locks, sorted.
func (t *Table) Names() []string {
	names := make([]string, 0, len(t.res))
	for n := range t.res {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Lock returns a copy of the master copy of a lock, if present.
func (t *Table) Lock(name string, id LockID) (Lock, bool) {
	r := t.res[name]
	if r == nil {
		return Lock{}, false
	}
	lk := r.byID[id]
	if lk == nil {
		return Lock{}, false
	}
	c := *lk
	c.LVB = slices.Clone(lk.LVB)
	return c, true
}

func (t *Table) resource(name string) *Resource {
	r := t.res[name]
	if r == nil {
		if r = t.spare; r != nil {
			t.spare = nil
			r.name = name
		} else {
			r = &Resource{name: name, byID: make(map[LockID]*Lock)}
		}
		t.res[name] = r
	}
	return r
}

// release drops a resource that has no locks left; its LVB goes with it, as
// the kernel frees res_lvbptr when the last reference to the rsb goes.
func (t *Table) release(r *Resource) {
	if len(r.byID) == 0 && !r.newMaster {
		delete(t.res, r.name)
		// Keep it, emptied, for the next new resource: a lock taken and
		// released on an otherwise unused resource then allocates neither
		// the resource nor its map and queues.
		clear(r.granted)
		clear(r.converting)
		clear(r.waiting)
		*r = Resource{byID: r.byID, granted: r.granted[:0], converting: r.converting[:0], waiting: r.waiting[:0]}
		t.spare = r
	}
}

func (t *Table) lvbArg(flags Flags, lvb []byte) ([]byte, error) {
	if flags&ValBlk == 0 {
		return nil, nil
	}
	if lvb == nil {
		return make([]byte, t.lvbLen), nil
	}
	if len(lvb) != t.lvbLen {
		return nil, fmt.Errorf("%w: LVB of %d bytes in a lockspace of %d-byte LVBs", ErrInvalid, len(lvb), t.lvbLen)
	}
	return slices.Clone(lvb), nil
}

func (lk *Lock) reply(res Result) Reply {
	rep := Reply{Result: res, Mode: lk.GrMode, SB: lk.SB, LVBSeq: lk.LVBSeq}
	if lk.lvbOut {
		rep.LVB = slices.Clone(lk.LVB)
		lk.lvbOut = false
	}
	return rep
}

func grantEvent(lk *Lock) Event {
	ev := Event{Kind: EventGrant, Lock: lk.ID, Mode: lk.GrMode, SB: lk.SB, LVBSeq: lk.LVBSeq}
	if lk.lvbOut {
		ev.LVB = slices.Clone(lk.LVB)
		lk.lvbOut = false
	}
	return ev
}

// Request adds a new lock (dlm_lock without CONVERT) owned by id, from the
// owner's process incarnation inc. It grants, queues or refuses it by the
// kernel's rules and returns the reply plus the BASTs it causes.
func (t *Table) Request(name string, id LockID, inc uint64, mode Mode, flags Flags, lvb []byte, wantBast bool) (Reply, []Event, error) {
	if err := ValidateLock(mode, flags, len(name)); err != nil {
		return Reply{}, nil, err
	}
	if flags&Convert != 0 {
		return Reply{}, nil, fmt.Errorf("%w: CONVERT on a new request", ErrInvalid)
	}
	buf, err := t.lvbArg(flags, lvb)
	if err != nil {
		return Reply{}, nil, err
	}
	r := t.resource(name)
	if r.byID[id] != nil {
		return Reply{}, nil, fmt.Errorf("%w: %v on %q", ErrExists, id, name)
	}
	lk := &Lock{ID: id, Inc: inc, GrMode: IV, RqMode: mode, Flags: flags, LVB: buf, WantBast: wantBast, HighBast: NL}
	r.byID[id] = lk

	var ev []Event
	if ok, _ := r.canBeGranted(lk, true, false); ok {
		r.grantLock(lk)
		return lk.reply(ResultGranted), nil, nil
	}
	if flags&NoQueue == 0 {
		r.add(lk, StatusWaiting)
		rep := lk.reply(ResultQueued)
		r.sendBlockingAsts(lk, false, &ev)
		return rep, ev, nil
	}
	rep := Reply{Result: ResultWouldBlock, Mode: IV, SB: lk.SB}
	if flags&NoQueueBast != 0 {
		r.sendBlockingAsts(lk, true, &ev)
	}
	delete(r.byID, id)
	t.release(r)
	return rep, ev, nil
}

// Convert changes the requested mode of a granted lock (dlm_lock with
// CONVERT): granted in place, queued, refused with WouldBlock, or failed or
// demoted on a conversion deadlock.
func (t *Table) Convert(name string, id LockID, mode Mode, flags Flags, lvb []byte) (Reply, []Event, error) {
	if err := ValidateLock(mode, flags|Convert, len(name)); err != nil {
		return Reply{}, nil, err
	}
	r := t.res[name]
	if r == nil || r.byID[id] == nil {
		return Reply{}, nil, fmt.Errorf("%w: %v on %q", ErrUnknownLock, id, name)
	}
	lk := r.byID[id]
	if lk.Status != StatusGranted {
		return Reply{}, nil, fmt.Errorf("%w: %v is %v", ErrBusy, id, lk.Status)
	}
	if flags&QueCvt != 0 && !QuecvtAllowed(lk.GrMode, mode) {
		return Reply{}, nil, fmt.Errorf("%w: QUECVT on %v->%v", ErrInvalid, lk.GrMode, mode)
	}
	if flags&ValBlk != 0 {
		buf, err := t.lvbArg(flags, lvb)
		if err != nil {
			return Reply{}, nil, err
		}
		if lvb != nil || lk.LVB == nil {
			lk.LVB = buf
		}
	}
	lk.Flags = flags | Convert
	lk.SB = 0
	lk.RqMode = mode

	var ev []Event
	ok, deadlk := r.canBeGranted(lk, true, false)
	if ok {
		r.grantLock(lk)
		rep := lk.reply(ResultGranted)
		r.grantPending(false, &ev)
		return rep, ev, nil
	}
	if deadlk && flags&NoDlckWt == 0 {
		// left on the granted queue; the kernel's revert_lock
		lk.RqMode = IV
		return lk.reply(ResultDeadlock), nil, nil
	}
	if lk.SB&Demoted != 0 {
		// CONVDEADLK demoted us to NL, which may let earlier conversions
		// through; try them first, then ourselves again.
		r.grantPendingConvert(IV, nil, false, &ev)
		if r.canBeGrantedInner(lk, true, false) {
			r.grantLock(lk)
			rep := lk.reply(ResultGranted)
			r.grantPending(false, &ev)
			return rep, ev, nil
		}
	}
	if flags&NoQueue == 0 {
		r.remove(lk)
		r.add(lk, StatusConverting)
		rep := lk.reply(ResultQueued)
		r.sendBlockingAsts(lk, false, &ev)
		return rep, ev, nil
	}
	if flags&NoQueueBast != 0 {
		r.sendBlockingAsts(lk, true, &ev)
	}
	lk.RqMode = IV
	return lk.reply(ResultWouldBlock), ev, nil
}

// Unlock removes a lock (dlm_unlock). Without FORCEUNLOCK the lock must be
// granted. Unlocking from PW or EX with VALBLK writes the lock's LVB (lvb, if
// given, replaces it first) to the resource; IVVALBLK invalidates it.
func (t *Table) Unlock(name string, id LockID, flags Flags, lvb []byte) (Reply, []Event, error) {
	if err := ValidateUnlock(flags); err != nil {
		return Reply{}, nil, err
	}
	if flags&Cancel != 0 {
		return Reply{}, nil, fmt.Errorf("%w: CANCEL on Unlock; use Cancel", ErrInvalid)
	}
	r := t.res[name]
	if r == nil || r.byID[id] == nil {
		return Reply{}, nil, fmt.Errorf("%w: %v on %q", ErrUnknownLock, id, name)
	}
	lk := r.byID[id]
	if flags&ForceUnlock == 0 && lk.Status != StatusGranted {
		return Reply{}, nil, fmt.Errorf("%w: %v is %v", ErrBusy, id, lk.Status)
	}
	lk.Flags |= flags
	if lk.Flags&ValBlk != 0 && lvb != nil {
		buf, err := t.lvbArg(ValBlk, lvb)
		if err != nil {
			return Reply{}, nil, err
		}
		lk.LVB = buf
	}
	lk.SB = 0
	r.setLVBUnlock(lk)
	r.remove(lk)
	delete(r.byID, id)
	rep := Reply{Result: ResultUnlocked, Mode: IV}
	var ev []Event
	r.grantPending(false, &ev)
	t.release(r)
	return rep, ev, nil
}

// Cancel cancels a lock's pending request or conversion (dlm_unlock with
// CANCEL). A waiting request is removed; a conversion reverts to its granted
// mode. A granted lock, or one the table does not hold (its request already
// failed or was unlocked), gives ResultNothingToCancel.
func (t *Table) Cancel(name string, id LockID) (Reply, []Event, error) {
	r := t.res[name]
	if r == nil || r.byID[id] == nil {
		return Reply{Result: ResultNothingToCancel, Mode: IV}, nil, nil
	}
	lk := r.byID[id]
	switch lk.Status {
	case StatusConverting:
		lk.RqMode = IV
		lk.SB = 0
		r.remove(lk)
		r.add(lk, StatusGranted)
	case StatusWaiting:
		lk.SB = 0
		r.remove(lk)
		delete(r.byID, id)
		lk.GrMode = IV
	default:
		return Reply{Result: ResultNothingToCancel, Mode: lk.GrMode}, nil, nil
	}
	rep := Reply{Result: ResultCancelled, Mode: lk.GrMode}
	var ev []Event
	r.grantPending(false, &ev)
	t.release(r)
	return rep, ev, nil
}

// Each calls f for every master copy on every resource, in name order and
// queue order (granted, converting, waiting). f must not change the table.
func (t *Table) Each(f func(name string, lk *Lock)) {
	for _, n := range t.Names() {
		r := t.res[n]
		for _, q := range [][]*Lock{r.granted, r.converting, r.waiting} {
			for _, lk := range q {
				f(n, lk)
			}
		}
	}
}
