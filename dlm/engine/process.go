package engine

import (
	"fmt"
	"maps"
	"slices"

	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/dlm/wire"
)

type opKind uint8

const (
	opNone opKind = iota
	opRequest
	opConvert
)

// plock is the process copy of one of this node's locks.
type plock struct {
	id       uint32
	name     string
	gr, rq   locktable.Mode
	status   locktable.Status // none until a master has accepted the request
	flags    locktable.Flags
	sb       locktable.SBFlags
	lvb      []byte
	lvbSeq   uint32
	wantBast bool
	highBast locktable.Mode // highest BAST received since the last grant

	op      opKind // request or conversion not yet answered
	opSent  bool
	opTo    NodeID
	opToInc uint64 // the engine incarnation it was sent to
	carried bool   // the request went with a lookup to the directory node opTo

	cancelling, cancelSent bool
	cancelTo               NodeID

	// Every message a lock sends carries a fresh number that its reply
	// echoes, so a late reply to an operation that recovery settled and
	// resent is not taken for the reply to the resend.
	seq                         uint64
	opSeq, cancelSeq, unlockSeq uint64

	unlocking, unlockSent bool
	unlockTo              NodeID
	unlockFlags           locktable.Flags

	filter         locktable.CallbackFilter
	grUnknown      bool // report the granted mode as unknown (a PR/CW conversion lost with its master)
	recoverDemoted bool // recovery lowered the granted mode to NL; say DEMOTED in the next completion
}

func (e *Engine) newLkID() uint32 {
	for {
		id := e.nextLkID
		e.nextLkID++
		if e.nextLkID == 0 {
			e.nextLkID = 1
		}
		if id != 0 && e.locks[id] == nil {
			return id
		}
	}
}

func (e *Engine) lvbArg(lvb []byte, have []byte) ([]byte, error) {
	if lvb == nil {
		if have != nil {
			return have, nil
		}
		return make([]byte, e.cfg.LVBLen), nil
	}
	if len(lvb) != e.cfg.LVBLen {
		return nil, fmt.Errorf("%w: LVB of %d bytes in a lockspace of %d-byte LVBs", locktable.ErrInvalid, len(lvb), e.cfg.LVBLen)
	}
	return slices.Clone(lvb), nil
}

// Lock requests a new lock on name (dlm_lock without CONVERT) and returns
// its id. The outcome arrives as a Completion callback. wantBast says the
// holder has a blocking callback.
func (e *Engine) Lock(name string, mode locktable.Mode, flags locktable.Flags, lvb []byte, wantBast bool) (uint32, error) {
	if e.left {
		return 0, ErrLeft
	}
	if err := locktable.ValidateLock(mode, flags, len(name)); err != nil {
		return 0, err
	}
	if flags&(locktable.Convert|locktable.Orphan) != 0 {
		return 0, fmt.Errorf("%w: CONVERT or ORPHAN on a new lock; use Convert, or adopt orphans in the node", locktable.ErrInvalid)
	}
	var buf []byte
	if flags&locktable.ValBlk != 0 {
		var err error
		if buf, err = e.lvbArg(lvb, nil); err != nil {
			return 0, err
		}
	}
	id := e.newLkID()
	lk := &plock{id: id, name: name, gr: locktable.IV, rq: mode, flags: flags, lvb: buf, wantBast: wantBast,
		highBast: locktable.NL, op: opRequest}
	e.step(func() {
		e.locks[id] = lk
		rs := e.rsbs[name]
		if rs == nil {
			if rs = e.spareRsb; rs != nil {
				e.spareRsb = nil
				rs.name = name
			} else {
				rs = &rsb{name: name, locks: map[uint32]bool{}}
			}
			e.rsbs[name] = rs
		}
		rs.locks[id] = true
		e.pump(lk)
	})
	return id, nil
}

// Convert changes the mode of a granted lock (dlm_lock with CONVERT).
func (e *Engine) Convert(id uint32, mode locktable.Mode, flags locktable.Flags, lvb []byte) error {
	if e.left {
		return ErrLeft
	}
	lk := e.locks[id]
	if lk == nil {
		return ErrUnknownLock
	}
	if err := locktable.ValidateLock(mode, flags|locktable.Convert, 1); err != nil {
		return err
	}
	if lk.op != opNone || lk.cancelling || lk.unlocking || lk.status != locktable.StatusGranted {
		return ErrBusy
	}
	if flags&locktable.QueCvt != 0 && !locktable.QuecvtAllowed(lk.gr, mode) {
		return fmt.Errorf("%w: QUECVT on %v->%v", locktable.ErrInvalid, lk.gr, mode)
	}
	if flags&locktable.ValBlk != 0 {
		buf, err := e.lvbArg(lvb, lk.lvb)
		if err != nil {
			return err
		}
		lk.lvb = buf
	}
	e.step(func() {
		lk.op, lk.opSent = opConvert, false
		lk.rq = mode
		lk.flags = flags | locktable.Convert
		lk.sb = 0
		e.pump(lk)
	})
	return nil
}

// Unlock releases a lock (dlm_unlock). Without FORCEUNLOCK the lock must be
// granted with nothing pending; with it, a pending request or conversion is
// superseded. The outcome arrives as a Completion with ResultUnlocked.
func (e *Engine) Unlock(id uint32, flags locktable.Flags, lvb []byte) error {
	if e.left {
		return ErrLeft
	}
	if err := locktable.ValidateUnlock(flags); err != nil {
		return err
	}
	if flags&locktable.Cancel != 0 {
		return e.Cancel(id)
	}
	lk := e.locks[id]
	if lk == nil {
		return ErrUnknownLock
	}
	force := flags&locktable.ForceUnlock != 0
	if lk.unlocking || (!force && (lk.op != opNone || lk.cancelling || lk.status != locktable.StatusGranted)) {
		return ErrBusy
	}
	if lvb != nil && (lk.flags|flags)&locktable.ValBlk != 0 {
		buf, err := e.lvbArg(lvb, lk.lvb)
		if err != nil {
			return err
		}
		lk.lvb = buf
	}
	e.step(func() {
		lk.flags |= flags & (locktable.ValBlk | locktable.IVValBlk)
		lk.unlockFlags = flags | lk.flags&locktable.ValBlk
		if force {
			if lk.op == opRequest && !lk.opSent {
				e.complete(lk, locktable.ResultUnlocked, true)
				return
			}
			if lk.op == opConvert && !lk.opSent {
				lk.op, lk.rq = opNone, locktable.IV
			}
			if lk.cancelling && !lk.cancelSent {
				lk.cancelling = false
			}
		}
		lk.unlocking = true
		e.pump(lk)
	})
	return nil
}

// Cancel cancels a lock's pending request or conversion (dlm_unlock with
// CANCEL). The cancelled operation completes with ResultCancelled, or with
// its own result if it finished first; a granted lock with nothing pending
// is left alone, as the kernel does.
func (e *Engine) Cancel(id uint32) error {
	if e.left {
		return ErrLeft
	}
	lk := e.locks[id]
	if lk == nil {
		return ErrUnknownLock
	}
	if lk.unlocking || lk.cancelling {
		return ErrBusy
	}
	if lk.op == opNone && lk.status == locktable.StatusGranted {
		return nil
	}
	e.step(func() {
		if lk.op != opNone && !lk.opSent {
			if lk.op == opRequest {
				e.complete(lk, locktable.ResultCancelled, true)
				return
			}
			lk.op, lk.rq = opNone, locktable.IV
			e.complete(lk, locktable.ResultCancelled, false)
			return
		}
		lk.cancelling = true
		e.pump(lk)
	})
	return nil
}

// pump sends what is pending on a lock, in order: the request or
// conversion, then a cancel, then an unlock.
func (e *Engine) pump(lk *plock) {
	if !e.running || e.left {
		return
	}
	opPending := lk.op != opNone && !lk.opSent
	cancelPending := lk.cancelling && !lk.cancelSent && (lk.op == opNone || lk.opSent || opPending)
	unlockPending := lk.unlocking && !lk.unlockSent
	if !opPending && !cancelPending && !unlockPending {
		return
	}
	rs := e.rsbs[lk.name]
	if rs.master == 0 {
		e.lookup(rs, lk)
		return
	}
	m := rs.master
	if lk.op != opNone && !lk.opSent {
		lk.opSent, lk.opTo, lk.carried = true, m, false
		lk.opToInc, _ = e.viewInc(m)
		lk.seq++
		lk.opSeq = lk.seq
		msg := lk.opMsg(e.gen)
		msg.ID = lk.seq
		if m == e.self {
			e.masterLocal(lk, msg)
		} else {
			e.send(m, msg)
		}
		if e.locks[lk.id] != lk {
			return
		}
	}
	if lk.cancelling && !lk.cancelSent {
		if lk.op == opNone && lk.status == locktable.StatusGranted {
			lk.cancelling = false // finished before we could cancel it
		} else {
			lk.cancelSent, lk.cancelTo = true, m
			lk.seq++
			lk.cancelSeq = lk.seq
			msg := wire.Msg{Type: wire.TypeCancel, Gen: e.gen, ID: lk.seq, LkID: lk.id, Name: lk.name}
			if m == e.self {
				e.masterLocal(lk, msg)
			} else {
				e.send(m, msg)
			}
			if e.locks[lk.id] != lk {
				return
			}
		}
	}
	if lk.unlocking && !lk.unlockSent {
		lk.unlockSent, lk.unlockTo = true, m
		lk.seq++
		lk.unlockSeq = lk.seq
		msg := wire.Msg{Type: wire.TypeUnlock, Gen: e.gen, ID: lk.seq, LkID: lk.id, Name: lk.name, Flags: lk.unlockFlags}
		if lk.unlockFlags&locktable.ValBlk != 0 {
			msg.LVB = slices.Clone(lk.lvb)
		}
		if m == e.self {
			e.masterLocal(lk, msg)
		} else {
			e.send(m, msg)
		}
	}
}

func (lk *plock) opMsg(gen uint64) wire.Msg {
	m := wire.Msg{Gen: gen, LkID: lk.id, Name: lk.name, Mode: lk.rq, Flags: lk.flags}
	if lk.op == opRequest {
		m.Type = wire.TypeRequest
		if lk.wantBast {
			m.Bits |= wire.BitWantBast
		}
	} else {
		m.Type = wire.TypeConvert
	}
	if lk.flags&locktable.ValBlk != 0 {
		m.LVB = slices.Clone(lk.lvb)
	}
	return m
}

// complete queues a completion callback; final destroys the lock.
func (e *Engine) complete(lk *plock, res locktable.Result, final bool) {
	mode := lk.gr
	if final {
		mode = locktable.IV
	}
	cb := Callback{LkID: lk.id, Kind: Completion, Result: res, Mode: mode, SB: lk.sb, LVBSeq: lk.lvbSeq, Final: final}
	if lk.recoverDemoted {
		cb.SB |= locktable.Demoted
		lk.recoverDemoted = false
	}
	if lk.flags&locktable.ValBlk != 0 && lk.lvb != nil {
		cb.LVB = slices.Clone(lk.lvb)
	}
	lk.filter.Cast(mode)
	e.cbs = append(e.cbs, cb)
	if final {
		e.destroy(lk)
	}
}

func (e *Engine) destroy(lk *plock) {
	delete(e.locks, lk.id)
	if rs := e.rsbs[lk.name]; rs != nil {
		delete(rs.locks, lk.id)
		e.dropRsbIfIdle(rs)
	}
}

func (e *Engine) dropRsbIfIdle(rs *rsb) {
	if len(rs.locks) == 0 && rs.lookupID == 0 && len(rs.heldReqs) == 0 && e.rsbs[rs.name] == rs {
		delete(e.rsbs, rs.name)
		// kept for the next new resource: it is empty, and nothing
		// refers to it once it is out of the map
		*rs = rsb{locks: rs.locks}
		e.spareRsb = rs
	}
}

func (lk *plock) takeLVB(m *wire.Msg) {
	if lk.flags&locktable.ValBlk == 0 {
		return
	}
	if m.LVB != nil {
		lk.lvb = slices.Clone(m.LVB)
	}
	if m.LVBSeq != 0 {
		lk.lvbSeq = m.LVBSeq
	}
}

func (lk *plock) granted(m *wire.Msg) {
	lk.op = opNone
	lk.status = locktable.StatusGranted
	lk.gr = m.Mode
	lk.rq = locktable.IV
	lk.sb = m.SB
	lk.highBast = locktable.NL
	lk.takeLVB(m)
	if lk.cancelling && !lk.cancelSent {
		lk.cancelling = false
	}
}

// lockFor returns the lock a reply from `from` is about, or nil if the
// reply is stale.
func (e *Engine) onRequestReply(from NodeID, m wire.Msg) {
	lk := e.locks[m.LkID]
	if lk == nil || lk.op != opRequest || !lk.opSent || lk.opTo != from || lk.name != m.Name || m.ID != lk.opSeq {
		return
	}
	lk.carried = false
	switch m.Result {
	case resultNotMaster:
		rs := e.rsbs[lk.name]
		if rs.master == from {
			rs.master = 0
		}
		rs.retry = true // find the master again (other locks may live there)
		e.unsend(lk)
	case locktable.ResultGranted:
		lk.granted(&m)
		e.complete(lk, locktable.ResultGranted, false)
	case locktable.ResultQueued:
		lk.op = opNone
		lk.status = locktable.StatusWaiting
		lk.sb = m.SB
	case locktable.ResultWouldBlock:
		lk.sb = m.SB
		e.complete(lk, locktable.ResultWouldBlock, true)
	default:
		e.logf("master %d refused request for lock %x on %q", from, lk.id, lk.name)
		e.complete(lk, ResultInvalid, true)
	}
}

func (e *Engine) onConvertReply(from NodeID, m wire.Msg) {
	lk := e.locks[m.LkID]
	if lk == nil || lk.op != opConvert || !lk.opSent || lk.opTo != from || lk.name != m.Name || m.ID != lk.opSeq {
		return
	}
	if m.Result == resultNotMaster {
		// sent to a master that gave the resource up in a recovery it did
		// not finish; the lock is on the new master now
		lk.opSent = false
		e.retryMaster(lk, from)
		return
	}
	switch m.Result {
	case locktable.ResultGranted:
		lk.granted(&m)
		e.complete(lk, locktable.ResultGranted, false)
	case locktable.ResultQueued:
		lk.op = opNone
		lk.status = locktable.StatusConverting
		lk.gr = m.Mode // NL if CONVDEADLK demoted it
		lk.sb = m.SB
	case locktable.ResultDeadlock, locktable.ResultWouldBlock:
		lk.op = opNone
		lk.rq = locktable.IV
		lk.gr = m.Mode
		lk.sb = m.SB
		e.complete(lk, m.Result, false)
	default:
		e.logf("master %d refused conversion of lock %x on %q", from, lk.id, lk.name)
		lk.op = opNone
		lk.rq = locktable.IV
		e.complete(lk, ResultInvalid, false)
	}
}

func (e *Engine) onUnlockReply(from NodeID, m wire.Msg) {
	lk := e.locks[m.LkID]
	if lk == nil || !lk.unlockSent || lk.unlockTo != from || lk.name != m.Name || m.ID != lk.unlockSeq {
		return
	}
	if m.Result == resultNotMaster {
		lk.unlockSent = false
		e.retryMaster(lk, from)
		return
	}
	if m.Result != locktable.ResultUnlocked {
		e.logf("master %d answered unlock of lock %x with %v", from, lk.id, m.Result)
	}
	lk.sb = 0
	e.complete(lk, locktable.ResultUnlocked, true)
}

func (e *Engine) onCancelReply(from NodeID, m wire.Msg) {
	lk := e.locks[m.LkID]
	if lk == nil || !lk.cancelSent || lk.cancelTo != from || lk.name != m.Name || m.ID != lk.cancelSeq {
		return
	}
	if m.Result == resultNotMaster {
		lk.cancelSent = false
		e.retryMaster(lk, from)
		return
	}
	lk.cancelling, lk.cancelSent = false, false
	if m.Result != locktable.ResultCancelled {
		return
	}
	lk.op = opNone
	lk.sb = 0
	if lk.status == locktable.StatusWaiting || lk.status == locktable.StatusNone {
		e.complete(lk, locktable.ResultCancelled, true)
		return
	}
	lk.status = locktable.StatusGranted
	lk.gr = m.Mode
	lk.rq = locktable.IV
	e.complete(lk, locktable.ResultCancelled, false)
}

func (e *Engine) onGrant(from NodeID, m wire.Msg) {
	lk := e.locks[m.LkID]
	if lk == nil || lk.name != m.Name || lk.op != opNone ||
		(lk.status != locktable.StatusWaiting && lk.status != locktable.StatusConverting) {
		return
	}
	if rs := e.rsbs[lk.name]; rs == nil || rs.master != from {
		return
	}
	lk.granted(&m)
	e.complete(lk, locktable.ResultGranted, false)
}

func (e *Engine) onBast(from NodeID, m wire.Msg) {
	lk := e.locks[m.LkID]
	if lk == nil || lk.name != m.Name || !m.Mode.Valid() {
		return
	}
	if rs := e.rsbs[lk.name]; rs == nil || rs.master != from {
		return
	}
	lk.highBast = max(lk.highBast, m.Mode)
	if lk.wantBast && lk.filter.Bast(m.Mode) {
		e.cbs = append(e.cbs, Callback{LkID: lk.id, Kind: Blocking, Mode: m.Mode})
	}
}

// retryMaster resends a lock's pending operations on the next tick, after
// `from` answered that it does not master the resource.
func (e *Engine) retryMaster(lk *plock, from NodeID) {
	rs := e.rsbs[lk.name]
	if rs.master == from {
		rs.master = 0
	}
	rs.retry = true
}

// unsend takes back a request that its addressee did not run: it is sent
// again once the master is known, unless the lock was being unlocked or
// cancelled meanwhile, which then ends it. It reports whether the lock
// still exists.
func (e *Engine) unsend(lk *plock) bool {
	lk.opSent, lk.carried = false, false
	if lk.unlocking {
		e.complete(lk, locktable.ResultUnlocked, true)
		return false
	}
	if lk.cancelling {
		e.complete(lk, locktable.ResultCancelled, true)
		return false
	}
	return true
}

// lookup asks the directory for a resource's master. If lk has a request
// to send, the lookup carries it: a directory node that masters the
// resource runs it at once and saves a round trip (the kernel's
// receive_lookup does the same).
func (e *Engine) lookup(rs *rsb, lk *plock) {
	if rs.lookupID != 0 || !e.running {
		return
	}
	d := dirNode(rs.name, e.view)
	if d == e.self {
		e.setMaster(rs, e.dirAssign(rs.name, e.self))
		return
	}
	e.lookupSeq++
	m := wire.Msg{Type: wire.TypeLookup, Gen: e.gen, Name: rs.name}
	if lk != nil && lk.op == opRequest && !lk.opSent && !lk.cancelling && !lk.unlocking {
		// one number serves as the lookup's and the request's: both
		// sequences only need to grow
		e.lookupSeq = max(e.lookupSeq, lk.seq+1)
		lk.seq = e.lookupSeq
		lk.opSent, lk.opTo, lk.carried, lk.opSeq = true, d, true, lk.seq
		lk.opToInc, _ = e.viewInc(d)
		m = lk.opMsg(e.gen)
		m.Type = wire.TypeLookup
		m.Bits |= wire.BitCarried
	}
	m.ID = e.lookupSeq
	rs.lookupID = e.lookupSeq
	e.send(d, m)
}

// carriedBy returns the lock whose request rode on the lookup that m
// answers, if that request is still waiting for its answer.
func (e *Engine) carriedBy(from NodeID, m *wire.Msg) *plock {
	lk := e.locks[m.LkID]
	if lk == nil || !lk.carried || lk.op != opRequest || !lk.opSent || lk.opTo != from || lk.opSeq != m.ID || lk.name != m.Name {
		return nil
	}
	return lk
}

func (e *Engine) setMaster(rs *rsb, m NodeID) {
	rs.master = m
	rs.mInc, _ = e.viewInc(m)
	rs.lookupID = 0
	rs.retry = false
	if m == e.self {
		e.own(rs.name)
	}
	held := rs.heldReqs
	rs.heldReqs = nil
	for _, in := range held {
		e.handleNormal(in.from, in.m)
	}
	if len(rs.locks) == 1 {
		// the usual case, without sorting a copy
		for id := range rs.locks {
			if lk := e.locks[id]; lk != nil {
				e.pump(lk)
			}
		}
	} else {
		for _, id := range sortedKeys(rs.locks) {
			if lk := e.locks[id]; lk != nil {
				e.pump(lk)
			}
		}
	}
	e.dropRsbIfIdle(rs)
}

func (e *Engine) onLookupReply(from NodeID, m wire.Msg) {
	if lk := e.carriedBy(from, &m); lk != nil && !m.Has(wire.BitCarried) {
		// the directory node did not run the request
		if e.unsend(lk) {
			if rs := e.rsbs[lk.name]; rs.lookupID != m.ID {
				// a recovery abandoned this lookup meanwhile
				e.pump(lk)
			}
		}
	}
	rs := e.rsbs[m.Name]
	if rs == nil || rs.lookupID != m.ID {
		if m.Node == e.self && m.Gen == e.gen && e.owned[m.Name] == nil && len(m.Name) > 0 {
			// The directory made us master of a resource we no longer
			// want: take it, so that it is released (and the directory
			// told) once idle, instead of leaving a dangling entry. (An
			// answer from before a recovery is void: the directory was
			// rebuilt from reports in which we did not claim it.)
			e.own(m.Name)
		}
		return
	}
	if m.Node == 0 || !e.inView(m.Node) {
		rs.lookupID = 0
		rs.retry = true
		return
	}
	e.setMaster(rs, m.Node)
}

func (e *Engine) retryLookups() {
	for _, name := range slices.Sorted(maps.Keys(e.rsbs)) {
		rs := e.rsbs[name]
		if rs == nil || !rs.retry {
			continue
		}
		rs.retry = false
		if rs.master == 0 {
			e.lookup(rs, nil)
		} else {
			for _, id := range slices.Sorted(maps.Keys(rs.locks)) {
				if lk := e.locks[id]; lk != nil {
					e.pump(lk)
				}
			}
		}
	}
}

// settleLost applies the kernel's recover_waiters rules to a lock whose
// master departed: operations that the master may or may not have carried
// out are settled so that the lock's reported state is safe whatever the
// master did.
func (e *Engine) settleLost(lk *plock) {
	if lk.unlocking && lk.unlockSent {
		// applied or not, the lock is gone
		e.complete(lk, locktable.ResultUnlocked, true)
		return
	}
	switch {
	case lk.op == opRequest && lk.opSent:
		e.unsend(lk) // if the lock is left, it is resent to the new master after recovery
	case lk.op == opConvert && lk.opSent:
		lk.opSent = false
		switch {
		case locktable.MiddleConversion(lk.gr, lk.rq):
			// the old master may have granted it: let the new one decide
			lk.op = opNone
			lk.status = locktable.StatusConverting
			lk.grUnknown = true
			lk.cancelSent = false
		case lk.flags&locktable.ConvDeadlk != 0:
			// the old master may have demoted it to NL
			lk.gr = locktable.NL
			lk.recoverDemoted = true
			if lk.cancelling {
				lk.op, lk.rq = opNone, locktable.IV
				lk.cancelling, lk.cancelSent = false, false
				e.complete(lk, locktable.ResultCancelled, false)
			}
		case locktable.DownConversion(lk.gr, lk.rq):
			// down-conversions are always granted at once
			lk.op = opNone
			lk.gr, lk.rq = lk.rq, locktable.IV
			lk.sb = 0
			lk.cancelling, lk.cancelSent = false, false
			e.complete(lk, locktable.ResultGranted, false)
		default:
			if lk.cancelling {
				lk.op, lk.rq = opNone, locktable.IV
				lk.cancelling, lk.cancelSent = false, false
				e.complete(lk, locktable.ResultCancelled, false)
			}
			// else resent after recovery
		}
	case lk.status == locktable.StatusWaiting:
		if lk.cancelling && lk.cancelSent {
			e.complete(lk, locktable.ResultCancelled, true)
			return
		}
	case lk.status == locktable.StatusConverting:
		if locktable.MiddleConversion(lk.gr, lk.rq) {
			lk.grUnknown = true
			lk.cancelSent = false // resent after recovery if still wanted
		} else {
			if lk.flags&locktable.ConvDeadlk != 0 {
				lk.gr = locktable.NL
				lk.recoverDemoted = true
			}
			if lk.cancelling && lk.cancelSent {
				lk.cancelling, lk.cancelSent = false, false
				lk.status = locktable.StatusGranted
				lk.rq = locktable.IV
				e.complete(lk, locktable.ResultCancelled, false)
			}
		}
	}
	// A cancel whose answer died with the master: with nothing left to
	// cancel it is dropped, else it is sent again after recovery.
	if lk.cancelSent {
		lk.cancelSent = false
		if lk.op == opNone && lk.status == locktable.StatusGranted {
			lk.cancelling = false
		}
	}
}

// report returns the lock as a survivor's copy for a new master; a lock
// whose request no master has accepted is not reported.
func (lk *plock) report() (wire.LockReport, bool) {
	r := wire.LockReport{Name: lk.name, LkID: lk.id, Flags: lk.flags, SB: lk.sb, HighBast: lk.highBast, WantBast: lk.wantBast}
	if lk.flags&locktable.ValBlk != 0 {
		r.LVB = slices.Clone(lk.lvb)
		r.LVBSeq = lk.lvbSeq
	}
	switch lk.status {
	case locktable.StatusWaiting:
		r.Status, r.GrMode, r.RqMode = locktable.StatusWaiting, locktable.IV, lk.rq
	case locktable.StatusConverting:
		r.Status, r.GrMode, r.RqMode = locktable.StatusConverting, lk.gr, lk.rq
		if lk.grUnknown {
			r.GrMode = locktable.IV
		}
	case locktable.StatusGranted:
		r.Status, r.GrMode, r.RqMode = locktable.StatusGranted, lk.gr, locktable.IV
	default:
		return r, false
	}
	lk.grUnknown = false
	return r, true
}
