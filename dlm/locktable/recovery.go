package locktable

import (
	"fmt"
	"slices"
)

// This file holds the kernel's recovery rules (fs/dlm/recover.c and the
// purge in lock.c). A surviving master calls Purge for the departed nodes;
// a new master calls AddRecovered for every lock the survivors report. Both
// then call FinishRecovery and, once locking is enabled again,
// GrantRecovered.

// Purge removes every master copy whose owner keep rejects (a departed node,
// or an old incarnation of a node). A purged PW or EX lock with VALBLK
// invalidates the resource's LVB at FinishRecovery; every resource that lost
// a lock is regranted by GrantRecovered. It returns how many locks went.
func (t *Table) Purge(keep func(id LockID, inc uint64) bool) int {
	n := 0
	for _, name := range t.Names() {
		r := t.res[name]
		for _, q := range [][]*Lock{slices.Clone(r.granted), slices.Clone(r.converting), slices.Clone(r.waiting)} {
			for _, lk := range q {
				if keep(lk.ID, lk.Inc) {
					continue
				}
				if lk.Flags&ValBlk != 0 && lk.GrMode >= PW {
					r.lvbInval = true
				}
				r.remove(lk)
				delete(r.byID, lk.ID)
				r.recoverGrant = true
				n++
			}
		}
		if len(r.byID) == 0 && !r.newMaster {
			// the LVB dies with the last lock
			delete(t.res, name)
		}
	}
	return n
}

// RecoveredLock is a survivor's copy of a lock, sent to a resource's new
// master. A conversion between PR and CW whose outcome the survivor could
// not learn before the old master died is reported with GrMode IV; the new
// master settles it (the kernel's recover_conversion).
type RecoveredLock struct {
	ID       LockID
	Inc      uint64
	GrMode   Mode
	RqMode   Mode
	Status   Status // granted, converting or waiting
	Flags    Flags
	SB       SBFlags
	LVB      []byte
	LVBSeq   uint32
	HighBast Mode
	WantBast bool
}

// AddRecovered rebuilds one lock on a resource this node is becoming the new
// master of. The resource must not already be mastered here outside a
// rebuild.
func (t *Table) AddRecovered(name string, rl RecoveredLock) error {
	if len(name) < 1 || len(name) > MaxNameLen {
		return fmt.Errorf("%w: resource name of %d bytes", ErrInvalid, len(name))
	}
	r := t.res[name]
	if r != nil && !r.newMaster {
		return fmt.Errorf("%w: %q is already mastered here", ErrExists, name)
	}
	switch {
	case rl.Status == StatusGranted && rl.GrMode.Valid() && rl.RqMode == IV:
	case rl.Status == StatusConverting && (rl.GrMode.Valid() || rl.GrMode == IV) && rl.RqMode.Valid():
	case rl.Status == StatusWaiting && rl.GrMode == IV && rl.RqMode.Valid():
	default:
		return fmt.Errorf("%w: recovered lock %v %v gr %v rq %v", ErrInvalid, rl.ID, rl.Status, rl.GrMode, rl.RqMode)
	}
	if rl.LVB != nil && len(rl.LVB) != t.lvbLen {
		return fmt.Errorf("%w: recovered LVB of %d bytes", ErrInvalid, len(rl.LVB))
	}
	if r == nil {
		r = t.resource(name)
		r.newMaster = true
	}
	if r.byID[rl.ID] != nil {
		return fmt.Errorf("%w: %v on %q", ErrExists, rl.ID, name)
	}
	hb := rl.HighBast
	if !hb.Valid() {
		hb = NL
	}
	lk := &Lock{
		ID: rl.ID, Inc: rl.Inc, GrMode: rl.GrMode, RqMode: rl.RqMode, Flags: rl.Flags,
		SB: rl.SB, LVB: slices.Clone(rl.LVB), LVBSeq: rl.LVBSeq, HighBast: hb, WantBast: rl.WantBast,
	}
	if lk.Flags&ValBlk != 0 && lk.LVB == nil {
		lk.LVB = make([]byte, t.lvbLen)
	}
	r.byID[rl.ID] = lk
	if rl.Status == StatusConverting && rl.GrMode == IV {
		r.recoverConvert = true
	}
	r.add(lk, rl.Status)
	return nil
}

// AbortRebuild drops every resource whose rebuild has not been finished,
// for a recovery that is abandoned before FinishRecovery.
func (t *Table) AbortRebuild() {
	for name, r := range t.res {
		if r.newMaster {
			delete(t.res, name)
		}
	}
}

// FinishRecovery applies the per-resource recovery rules once every
// survivor's locks are in: settle PR/CW conversions of unknown outcome,
// recover the LVB on new masters (from a VALBLK lock above CR, else the
// highest sequence number, marked invalid), invalidate it where a purged
// lock held PW or EX, and mark resources with queued locks for regranting.
func (t *Table) FinishRecovery() {
	for name, r := range t.res {
		if r.newMaster {
			if r.recoverConvert {
				r.recoverConversion()
			}
			r.recoverLVB(t.lvbLen)
			if len(r.waiting) > 0 || len(r.converting) > 0 {
				r.recoverGrant = true
			}
		} else if r.lvbInval {
			r.valNotValid = true
		}
		r.newMaster, r.recoverConvert, r.lvbInval = false, false, false
		if len(r.byID) == 0 {
			delete(t.res, name)
		}
	}
}

// recoverConversion is recover_conversion: a PR<->CW conversion whose
// granted mode is unknown takes the mode of a lock holding PR or CW if there
// is one (the old master must have left it compatible with that lock), else
// its requested mode. The holder may itself be converting (holding CW while
// converting to PW, say): the kernel looks at the grant queue only, which
// here granted PR beside a converting lock's CW (found by dlmsim).
func (r *Resource) recoverConversion() {
	gr := IV
	for _, lk := range slices.Concat(r.granted, r.converting) {
		if lk.GrMode == PR || lk.GrMode == CW {
			gr = lk.GrMode
			break
		}
	}
	for _, lk := range r.converting {
		if lk.GrMode != IV {
			continue
		}
		if gr == IV {
			lk.GrMode = lk.RqMode
		} else {
			lk.GrMode = gr
		}
	}
}

// recoverLVB is recover_lvb for a new master.
func (r *Resource) recoverLVB(lvbLen int) {
	var big, high *Lock
	var highSeq uint32
	exists := false
scan:
	for _, q := range [][]*Lock{r.granted, r.converting} {
		for _, lk := range q {
			if lk.Flags&ValBlk == 0 {
				continue
			}
			exists = true
			if lk.GrMode > CR {
				big = lk
				break scan
			}
			if int32(lk.LVBSeq-highSeq) >= 0 {
				high = lk
				highSeq = lk.LVBSeq
			}
		}
	}
	if !exists {
		return
	}
	if big == nil {
		r.valNotValid = true
	}
	src := big
	if src == nil {
		src = high
	}
	if src != nil && src.LVB != nil {
		r.lvb = slices.Clone(src.LVB)
		r.lvbSeq = src.LVBSeq
		return
	}
	r.lvb = make([]byte, lvbLen)
	r.lvbSeq = 0
}

// GrantRecovered regrants every resource that recovery changed, granting
// conversions without regard to their order (the kernel's RECOVER_GRANT),
// and calls f with each resource's events, in name order.
func (t *Table) GrantRecovered(f func(name string, ev []Event)) {
	for _, name := range t.Names() {
		r := t.res[name]
		if !r.recoverGrant {
			continue
		}
		r.recoverGrant = false
		var ev []Event
		r.grantPending(true, &ev)
		if len(ev) > 0 {
			f(name, ev)
		}
	}
}

// Drop forgets a resource entirely, for a node that gives up mastering it.
func (t *Table) Drop(name string) {
	delete(t.res, name)
}
