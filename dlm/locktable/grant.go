package locktable

import "slices"

// This file holds the kernel's grant rules. Function names follow
// fs/dlm/lock.c so the two can be read side by side.

// add puts lk on the queue for status. The granted queue is ordered by
// granted mode, highest first (stable); HEADQUE puts a converting or waiting
// lock at the head of its queue.
func (r *Resource) add(lk *Lock, status Status) {
	lk.Status = status
	switch status {
	case StatusGranted:
		i := len(r.granted)
		for j, o := range r.granted {
			if o.GrMode < lk.GrMode {
				i = j
				break
			}
		}
		r.granted = slices.Insert(r.granted, i, lk)
	case StatusConverting:
		if lk.Flags&HeadQue != 0 {
			r.converting = slices.Insert(r.converting, 0, lk)
		} else {
			r.converting = append(r.converting, lk)
		}
	case StatusWaiting:
		if lk.Flags&HeadQue != 0 {
			r.waiting = slices.Insert(r.waiting, 0, lk)
		} else {
			r.waiting = append(r.waiting, lk)
		}
	}
}

// remove takes lk off whatever queue it is on.
func (r *Resource) remove(lk *Lock) {
	del := func(q []*Lock) []*Lock {
		if i := slices.Index(q, lk); i >= 0 {
			return slices.Delete(q, i, i+1)
		}
		return q
	}
	switch lk.Status {
	case StatusGranted:
		r.granted = del(r.granted)
	case StatusConverting:
		r.converting = del(r.converting)
	case StatusWaiting:
		r.waiting = del(r.waiting)
	}
	lk.Status = StatusNone
}

// queueConflict reports whether any other lock on q has a granted mode
// incompatible with lk's requested mode.
func queueConflict(q []*Lock, lk *Lock) bool {
	for _, o := range q {
		if o != lk && !Compatible(o.GrMode, lk.RqMode) {
			return true
		}
	}
	return false
}

// convDeadlock is conversion_deadlock_detect: lk2's granted mode blocks a
// conversion ahead of it, or lk2 and a conversion behind it block each other.
func (r *Resource) convDeadlock(lk2 *Lock) bool {
	behind := false
	for _, lk1 := range r.converting {
		if lk1 == lk2 {
			behind = true
			continue
		}
		if !behind {
			if !Compatible(lk2.GrMode, lk1.RqMode) {
				return true
			}
		} else if !Compatible(lk2.GrMode, lk1.RqMode) && !Compatible(lk1.GrMode, lk2.RqMode) {
			return true
		}
	}
	return false
}

// canBeGrantedInner is _can_be_granted. now is true when the request is being
// made, false when a queued lock is reconsidered; recover is true when
// conversions are regranted after recovery, which ignores their order.
func (r *Resource) canBeGrantedInner(lk *Lock, now, recover bool) bool {
	conv := lk.GrMode != IV
	if lk.Flags&Expedite != 0 {
		return true
	}
	if queueConflict(r.granted, lk) || queueConflict(r.converting, lk) {
		return false
	}
	if conv && recover {
		return true
	}
	if now && conv {
		if lk.Flags&QueCvt == 0 {
			return true
		}
		return len(r.converting) == 0
	}
	if lk.Flags&NoOrder != 0 {
		return true
	}
	if !now && conv && len(r.converting) > 0 && r.converting[0] == lk {
		return true
	}
	if now && !conv && len(r.converting) == 0 && len(r.waiting) == 0 {
		return true
	}
	if !now && !conv && len(r.converting) == 0 && len(r.waiting) > 0 && r.waiting[0] == lk {
		return true
	}
	return false
}

// canBeGranted is can_be_granted: _can_be_granted plus conversion-deadlock
// handling (CONVDEADLK demotes the granted mode to NL; otherwise deadlk is
// reported) and the ALTPR/ALTCW second try.
func (r *Resource) canBeGranted(lk *Lock, now, recover bool) (ok, deadlk bool) {
	rq := lk.RqMode
	conv := lk.GrMode != IV
	if r.canBeGrantedInner(lk, now, recover) {
		return true, false
	}
	if conv && lk.Flags&NoQueue == 0 && r.convDeadlock(lk) {
		if lk.Flags&ConvDeadlk != 0 {
			r.demote(lk)
			return false, false
		}
		return false, true
	}
	alt := IV
	if rq != PR && lk.Flags&AltPR != 0 {
		alt = PR
	} else if rq != CW && lk.Flags&AltCW != 0 {
		alt = CW
	}
	if alt != IV {
		lk.RqMode = alt
		if r.canBeGrantedInner(lk, now, false) {
			lk.SB |= AltMode
			return true, false
		}
		lk.RqMode = rq
	}
	return false, false
}

// demote lowers lk's granted mode to NL and flags the completion DEMOTED.
func (r *Resource) demote(lk *Lock) {
	st := lk.Status
	if st == StatusGranted {
		r.remove(lk)
	}
	lk.GrMode = NL
	lk.SB |= Demoted
	if st == StatusGranted {
		r.add(lk, StatusGranted)
	}
}

// setLVBLock is set_lvb_lock: on a grant, return the resource's LVB to the
// caller or write the caller's to the resource, per dlm_lvb_operations.
func (r *Resource) setLVBLock(lk *Lock) {
	switch LVBOp(lk.GrMode, lk.RqMode) {
	case LVBRead:
		if lk.Flags&ValBlk != 0 && r.lvb != nil {
			lk.LVB = slices.Clone(r.lvb)
			lk.LVBSeq = r.lvbSeq
			lk.lvbOut = true
		}
	case LVBWrite:
		if lk.Flags&IVValBlk != 0 {
			r.valNotValid = true
			return
		}
		if lk.Flags&ValBlk != 0 && lk.LVB != nil {
			r.lvb = slices.Clone(lk.LVB)
			r.lvbSeq++
			lk.LVBSeq = r.lvbSeq
			r.valNotValid = false
		}
	}
	if r.valNotValid {
		lk.SB |= ValNotValid
	}
}

// setLVBUnlock is set_lvb_unlock: an unlock from PW or EX writes (VALBLK) or
// invalidates (IVVALBLK) the resource's LVB.
func (r *Resource) setLVBUnlock(lk *Lock) {
	if lk.GrMode < PW {
		return
	}
	if lk.Flags&IVValBlk != 0 {
		r.valNotValid = true
		return
	}
	if lk.Flags&ValBlk == 0 || lk.LVB == nil {
		return
	}
	r.lvb = slices.Clone(lk.LVB)
	r.lvbSeq++
	r.valNotValid = false
}

// grantLock is grant_lock: apply the LVB rule, then move lk to the granted
// queue at its requested mode.
func (r *Resource) grantLock(lk *Lock) {
	r.setLVBLock(lk)
	if lk.GrMode != lk.RqMode || lk.Status != StatusGranted {
		st := lk.Status
		if st != StatusNone {
			r.remove(lk)
		}
		lk.GrMode = lk.RqMode
		r.add(lk, StatusGranted)
	}
	lk.RqMode = IV
	lk.HighBast = NL
}

// grantPendingConvert grants what it can on the converting queue, restarting
// after every grant, and returns the highest mode still blocked (at least
// high). It sets *cw when a blocked conversion wants CW.
func (r *Resource) grantPendingConvert(high Mode, cw *bool, recover bool, ev *[]Event) Mode {
	quit := false
	for {
		grantRestart, demoteRestart := false, false
		hi := IV
		for _, lk := range slices.Clone(r.converting) {
			if lk.Status != StatusConverting {
				continue
			}
			demoted := lk.SB&Demoted != 0
			ok, deadlk := r.canBeGranted(lk, false, recover)
			if ok {
				r.grantLock(lk)
				*ev = append(*ev, grantEvent(lk))
				grantRestart = true
				continue
			}
			if !demoted && lk.SB&Demoted != 0 {
				demoteRestart = true
				continue
			}
			if deadlk {
				// NODLCKWT: ask the deadlocked lock itself to give way.
				if lk.Flags&NoDlckWt != 0 && lk.HighBast < lk.RqMode {
					if lk.WantBast {
						*ev = append(*ev, Event{Kind: EventBast, Lock: lk.ID, Mode: lk.RqMode})
					}
					lk.HighBast = lk.RqMode
				}
				continue
			}
			hi = max(hi, lk.RqMode)
			if cw != nil && lk.RqMode == CW {
				*cw = true
			}
		}
		if grantRestart {
			continue
		}
		if demoteRestart && !quit {
			quit = true
			continue
		}
		return max(high, hi)
	}
}

// grantPendingWait grants what it can on the waiting queue and returns the
// highest mode still blocked (at least high).
func (r *Resource) grantPendingWait(high Mode, cw *bool, ev *[]Event) Mode {
	for _, lk := range slices.Clone(r.waiting) {
		if lk.Status != StatusWaiting {
			continue
		}
		if ok, _ := r.canBeGranted(lk, false, false); ok {
			r.grantLock(lk)
			*ev = append(*ev, grantEvent(lk))
			continue
		}
		high = max(high, lk.RqMode)
		if lk.RqMode == CW {
			*cw = true
		}
	}
	return high
}

// lockRequiresBast is lock_requires_bast: a granted lock gets a BAST for the
// highest blocked mode unless it was already BASTed for at least that mode
// or is compatible with it; a PR holder blocking a CW request is BASTed
// unless it already got one for EX.
func lockRequiresBast(gr *Lock, high Mode, cw bool) bool {
	if gr.GrMode == PR && cw {
		return gr.HighBast < EX
	}
	return gr.HighBast < high && !Compatible(gr.GrMode, high)
}

// grantPending is grant_pending_locks: after an unlock, a cancel or a
// conversion, grant the converting queue, then the waiting queue, then BAST
// the holders blocking the highest mode still waiting.
func (r *Resource) grantPending(recover bool, ev *[]Event) {
	high := IV
	cw := false
	high = r.grantPendingConvert(high, &cw, recover, ev)
	high = r.grantPendingWait(high, &cw, ev)
	if high == IV {
		return
	}
	for _, gr := range slices.Clone(r.granted) {
		if gr.WantBast && lockRequiresBast(gr, high, cw) {
			m := high
			if cw && high == PR && gr.GrMode == PR {
				m = CW
			}
			*ev = append(*ev, Event{Kind: EventBast, Lock: gr.ID, Mode: m})
			gr.HighBast = high
		}
	}
}

// modesRequireBast is modes_require_bast.
func modesRequireBast(gr, rq *Lock) bool {
	if MiddleConversion(gr.GrMode, rq.RqMode) {
		return gr.HighBast < EX
	}
	return gr.HighBast < rq.RqMode && !Compatible(gr.GrMode, rq.RqMode)
}

// sendBlockingAsts BASTs the granted holders (and with all, the converting
// locks, for NOQUEUEBAST) that block lk's request.
func (r *Resource) sendBlockingAsts(lk *Lock, all bool, ev *[]Event) {
	queues := [][]*Lock{r.granted}
	if all {
		queues = append(queues, r.converting)
	}
	for _, q := range queues {
		for _, gr := range q {
			if gr == lk {
				continue
			}
			if gr.WantBast && modesRequireBast(gr, lk) {
				*ev = append(*ev, Event{Kind: EventBast, Lock: gr.ID, Mode: lk.RqMode})
				gr.HighBast = lk.RqMode
			}
		}
	}
}
