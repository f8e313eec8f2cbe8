package engine

import (
	"errors"
	"fmt"
)

// FencePolicy is DRBD's fencing policy.
type FencePolicy uint8

// Fencing policies.
const (
	// DontCare: no fencing (DRBD's default).
	DontCare FencePolicy = iota
	// ResourceOnly: a primary that loses a peer runs the fence-peer
	// handler; I/O goes on meanwhile.
	ResourceOnly
	// ResourceAndStonith: as ResourceOnly, but I/O freezes until the
	// handler reports the peer outdated or fenced.
	ResourceAndStonith
)

var fencePolicyNames = []string{"dont-care", "resource-only", "resource-and-stonith"}

func (f FencePolicy) String() string { return fencePolicyNames[f] }

// ParseFencePolicy reads a policy name.
func ParseFencePolicy(s string) (FencePolicy, error) {
	for i, n := range fencePolicyNames {
		if n == s {
			return FencePolicy(i), nil
		}
	}
	return 0, fmt.Errorf("fencing %q: want dont-care, resource-only or resource-and-stonith", s)
}

// Fence-peer handler exit codes (DRBD's).
const (
	FencePeerInconsistent = 3
	FencePeerOutdated     = 4
	FencePeerUnreachable  = 5
	FencePeerIsPrimary    = 6
	FencePeerFenced       = 7
)

// ErrNeedsFencing is returned by Promote when fencing is configured and a
// peer that is not connected is not known to be outdated: the caller runs
// the fence-peer handler for the peers in the NeedsFencingError first.
var ErrNeedsFencing = errors.New("a peer must be fenced or outdated before promotion")

// NeedsFencingError lists the peers to fence.
type NeedsFencingError struct{ Peers []uint32 }

func (e *NeedsFencingError) Error() string {
	return fmt.Sprintf("%v: nodes %v", ErrNeedsFencing, e.Peers)
}

func (e *NeedsFencingError) Is(target error) bool { return target == ErrNeedsFencing }

// Suspended reports that I/O is frozen waiting for fencing, or for quorum
// (on-no-quorum suspend-io). Writes and flushes must wait.
func (e *Engine) Suspended() bool { return e.suspended || e.quorumFrozen() }

// fencePeerLocked starts fencing a peer this primary lost.
func (e *Engine) startFencing(o *Output, p *peer, why string) {
	if e.cfg.Fencing == DontCare || p.fencing {
		return
	}
	p.fencing = true
	o.Handlers = append(o.Handlers, Handler{Name: "fence-peer", Peer: p.id, Detail: why})
	if e.cfg.Fencing == ResourceAndStonith && !e.suspended {
		e.suspended = true
		e.event(o, "io", "running", "suspended", "fencing node "+fmt.Sprint(p.id)+": "+why)
	}
}

// FenceResult reports the fence-peer handler's exit code for peer. Codes 3,
// 4 and 7 (and 5 under resource-only) settle the peer: it is marked
// outdated (an Inconsistent peer too: either way it cannot become primary
// without a resync from this node, so a promotion may go ahead, as in
// DRBD), and I/O resumes once no fencing is pending. Code 6 (the peer is
// primary) outdates this node and keeps I/O frozen. Anything else is a
// failed fencing: under resource-and-stonith I/O stays frozen until an
// operator resumes it.
func (e *Engine) FenceResult(peerID uint32, code int) Output {
	var o Output
	p, ok := e.peers[peerID]
	if !ok {
		return o
	}
	p.fencing = false
	settled := false
	s := &e.gen.Slots[p.slot]
	switch {
	case code == FencePeerOutdated || code == FencePeerFenced || code == FencePeerInconsistent ||
		code == FencePeerUnreachable && e.cfg.Fencing == ResourceOnly:
		s.Outdated, settled = true, true
	case code == FencePeerIsPrimary:
		old := e.Disk()
		e.gen.UpToDate, e.unsure = false, false
		e.event(&o, "disk", old.String(), e.Disk().String(), fmt.Sprintf("fence-peer: node %d is primary", p.id))
	}
	if err := e.persist(); err != nil {
		e.diskFailed(&o, err)
	}
	e.peerEvent(&o, p, "fencing", "running", map[bool]string{true: "done", false: "failed"}[settled],
		fmt.Sprintf("fence-peer handler exited %d", code))
	if settled {
		e.maybeResume(&o, "fencing done")
	}
	return o
}

func (e *Engine) maybeResume(o *Output, why string) {
	if !e.suspended {
		return
	}
	for _, p := range e.order {
		if p.fencing {
			return
		}
	}
	e.suspended = false
	e.event(o, "io", "suspended", "running", why)
}

// ResumeIO unfreezes I/O by an operator's decision (DRBD's resume-io).
func (e *Engine) ResumeIO() Output {
	var o Output
	for _, p := range e.order {
		p.fencing = false
	}
	e.maybeResume(&o, "resumed by the operator")
	return o
}

// needsFencing lists the peers a promotion must fence first.
func (e *Engine) needsFencing() []uint32 {
	if e.cfg.Fencing == DontCare {
		return nil
	}
	var out []uint32
	for _, id := range e.cfg.Peers {
		p := e.peers[id]
		if p.conn != Connected && !e.gen.Slots[p.slot].Outdated {
			out = append(out, id)
		}
	}
	return out
}
