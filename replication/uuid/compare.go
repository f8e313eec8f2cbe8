package uuid

import (
	"fmt"
	"slices"
)

// JustCreated is the current UUID of metadata that has never been promoted
// or synced.
const JustCreated uint64 = 4

// Decision is what a node does when it meets a peer.
type Decision int

// Decisions, from the point of view of the node calling Compare.
const (
	// NoSync: the data is the same; nothing to transfer.
	NoSync Decision = iota
	// SourceBitmap: I resync the peer from my data, only the blocks marked
	// in either side's bitmap.
	SourceBitmap
	// TargetBitmap: the peer resyncs me, bitmap-based.
	TargetBitmap
	// SourceFull: I resync the whole volume to the peer.
	SourceFull
	// TargetFull: the peer resyncs my whole volume.
	TargetFull
	// SplitBrainAuto: both sides changed data since they shared a
	// generation (the same bitmap UUID): a split brain that the after-sb
	// policies may resolve with a bitmap-based resync.
	SplitBrainAuto
	// SplitBrainDisconnect: the sides share history but not a recoverable
	// point: only an operator (connect --discard-my-data) can resolve it,
	// with a full sync.
	SplitBrainDisconnect
	// Unrelated: no common history at all; never connect.
	Unrelated
)

var decisionNames = [...]string{"no-sync", "source-bitmap", "target-bitmap", "source-full", "target-full", "split-brain", "split-brain-disconnect", "unrelated"}

func (d Decision) String() string {
	if int(d) < len(decisionNames) {
		return decisionNames[d]
	}
	return fmt.Sprintf("decision(%d)", int(d))
}

// Mirror is the decision the peer reaches.
func (d Decision) Mirror() Decision {
	switch d {
	case SourceBitmap:
		return TargetBitmap
	case TargetBitmap:
		return SourceBitmap
	case SourceFull:
		return TargetFull
	case TargetFull:
		return SourceFull
	}
	return d
}

// IsSource reports a decision where this node sends data.
func (d Decision) IsSource() bool { return d == SourceBitmap || d == SourceFull }

// IsTarget reports a decision where this node receives data.
func (d Decision) IsTarget() bool { return d == TargetBitmap || d == TargetFull }

// Side is what a node knows of its own generations, as seen by the
// comparison with one particular peer.
type Side struct {
	NodeID uint32
	// Current is the current data generation.
	Current uint64
	// Bitmap is the bitmap UUID of the slot for the other node: the
	// generation at which this node began recording changes the other does
	// not have (0: none).
	Bitmap uint64
	// History holds older generations, newest first.
	History []uint64
	// CrashedPrimary: this node was primary and did not shut down cleanly.
	CrashedPrimary bool
	// Primary: this node is primary now.
	Primary bool
	// NoQuorum: this node is primary without quorum (one whose quorum
	// still counts peers its promotion is handshaking with again was
	// promoted with quorum, and counts as quorate here).
	NoQuorum bool
	// ChangedBits is the number of bits set in Bitmap's slot (for the
	// "leftover bits" rule).
	ChangedBits int64
	// Tentative: Current was taken from a primary that had not confirmed
	// it, or by a primary under quorum that not enough nodes had recorded
	// it with yet; History[0] is the generation before.
	Tentative bool
	// Uncommitted: Current is tentative because its primary, under
	// quorum, had not seen enough nodes record it (so many that every
	// majority meets one) when this node last heard: this node itself as
	// primary, or the primary it followed or resynced from. Writes in it
	// wait for that record (a promotion without quorum clears the mark),
	// so none was acknowledged while it holds: on a node that is not
	// primary it is void against a primary with quorum (Side.voided).
	Uncommitted bool
	// Pending: Current is a generation that a primary (this node itself,
	// or the one it followed) had announced and not taken when this node
	// last heard. The node received no write in it (the primary sends
	// those after saying it took it): its data is that of History[0].
	Pending bool
	// CrashedSecondary: this node crashed while secondary and has not
	// resynced as a target since: its activity-log replay marked blocks
	// whose data may be older than its peers' (acknowledged writes lost
	// with a volatile cache).
	CrashedSecondary bool
}

// SecondaryCrashed: s crashed as secondary, and not as primary before
// (that one counts as a crashed primary).
func (s Side) SecondaryCrashed() bool { return s.CrashedSecondary && !s.CrashedPrimary }

// knows reports whether u is one of s's generations.
func (s Side) knows(u uint64) bool {
	return mask(s.Current) == mask(u) || s.Bitmap == u || slices.Contains(s.History, u)
}

// settled is s as compared with other: a tentative generation other does
// not know counts as the one before it. A secondary takes a primary's new
// generation before the primary does; if the primary dies in between,
// another secondary that never took it may be promoted and start its own,
// and the two would look like a split brain although the first holds only
// writes that the primary had not confirmed, which it marked.
func (s Side) settled(other Side) Side {
	if !s.Tentative || len(s.History) == 0 || other.knows(s.Current) {
		return s
	}
	s.Current, s.History, s.Tentative, s.Pending = s.History[0], s.History[1:], false, false
	return s
}

// voided is s as compared with other, a primary with quorum: an
// uncommitted generation on a node that is not primary, which other does
// not know, counts as the one before it, whatever the comparison would
// say. Had its primary committed it, enough nodes would hold it that
// every majority meets one, and other, promoted by a majority and holding
// one now, would have met one of those nodes and refused promotion over
// newer data: so it holds only writes nobody acknowledged (they waited for
// the record). A primary without quorum proves nothing: it may be a
// cut-off one while the majority's primary commits the generation. (One
// still in its promotion's grace was promoted with quorum: it does; the
// majority's new primary usually is, when a stepped-down one meets it.)
// Taken at face value the generation would make s (a stepped-down
// primary, or a secondary of a primary that died) the source for the
// majority's new primary, which refuses, and the two would stay apart
// until an operator discarded one. Against a secondary it stays: sync
// targets may have recorded it without telling s (their resync goes
// towards it), and only s can finish theirs.
func (s Side) voided(other Side) Side {
	if !s.Uncommitted || s.Primary || !other.Primary || other.NoQuorum {
		return s
	}
	s.Uncommitted = false
	return s.settled(other)
}

// Protocol is the replication protocol on the connection.
type Protocol byte

// Protocols.
const (
	ProtocolA Protocol = 'A'
	ProtocolB Protocol = 'B'
	ProtocolC Protocol = 'C'
)

// Result is Compare's answer.
type Result struct {
	Decision Decision
	// Rule is the number of the rule that decided (see Compare).
	Rule int
	// Reason says why, for the log.
	Reason string
}

func mask(u uint64) uint64 { return u &^ 1 }

// fresh treats a zero current UUID like a just-created one.
func fresh(u uint64) uint64 {
	if u == 0 {
		return JustCreated
	}
	return u
}

// Compare decides what me does on meeting peer. An uncommitted generation
// on a side that is not primary is void against a primary with quorum:
// it counts as the one before it if the primary does not know it
// (Side.voided) and that makes the side the sync target. If the answer
// is a split brain, a tentative generation the other side does not know
// counts as the one before it and the sides are compared again
// (Side.settled): only then, because a tentative secondary may hold
// writes the other lacks, and where the generations already order the two
// that order is right. The rules, in order:
//
//  1. Both just created: no sync. One just created: it is the full-sync
//     target.
//  2. Equal current UUIDs: with blocks marked and one side that knows the
//     generation only as announced (Pending), the other side, which knows
//     it taken and may hold writes in it or held for it, is the bitmap
//     source (even a crashed primary: the announced copy holds none of
//     its writes in it). Otherwise, with exactly one crashed primary and
//     a peer that did not crash as secondary either, under protocol
//     A or B the crashed primary is the bitmap source (its activity log may
//     hold acknowledged writes the peer never got); under protocol C the
//     survivor is the source (no acknowledged write is only on the crashed
//     node), and so it is under A or B once the survivor was promoted (an
//     operator chose it; its writes are the ones that count). Two crashed
//     primaries: the one promoted since, else the lower node id is the
//     source.
//     Otherwise leftover bits (from an activity-log replay) are synced from
//     the side that did not crash while secondary (its replayed blocks
//     may have lost acknowledged writes with a volatile cache; a crashed
//     primary is no survivor against it, so it is the source there), else
//     from the primary, else from the lower node id; with no bits, no
//     sync.
//  3. The peer's bitmap UUID for me is my current UUID: the peer changed
//     data since we were in sync; I am the bitmap target.
//  4. My bitmap UUID for the peer is its current UUID: I am the bitmap source.
//  5. My current UUID is in the peer's history and not the other way
//     round: I am behind by more than a bitmap records; full-sync target
//     (and mirrored: full-sync source).
//  6. Both bitmap UUIDs are equal and non-zero: both changed data since the
//     same generation: split brain, automatically recoverable.
//  7. Any shared generation: split brain that needs an operator.
//  8. Otherwise the data is unrelated.
func Compare(me, peer Side, proto Protocol) Result {
	vm, vp := me.voided(peer), peer.voided(me)
	if vm.Current != me.Current || vp.Current != peer.Current {
		// Only as the target: a source's generation is what its target
		// takes at the end, and a void one must not spread.
		r := Compare(vm, vp, proto)
		if (vm.Current == me.Current || r.Decision.IsTarget()) && (vp.Current == peer.Current || r.Decision.IsSource()) {
			r.Reason += " (an uncommitted generation counted as the one before it)"
			return r
		}
	}
	r := compare(me, peer, proto)
	if r.Decision != SplitBrainAuto && r.Decision != SplitBrainDisconnect {
		return r
	}
	sm, sp := me.settled(peer), peer.settled(me)
	if sm.Tentative == me.Tentative && sp.Tentative == peer.Tentative {
		return r
	}
	r = compare(sm, sp, proto)
	r.Reason += " (a tentative generation the other side does not know counted as the one before it)"
	return r
}

func compare(me, peer Side, proto Protocol) Result {
	mc, pc := fresh(mask(me.Current)), fresh(mask(peer.Current))
	// Rule 1.
	switch {
	case mc == JustCreated && pc == JustCreated:
		return Result{NoSync, 1, "both sides are just created"}
	case mc == JustCreated:
		return Result{TargetFull, 1, "this side is just created"}
	case pc == JustCreated:
		return Result{SourceFull, 1, "the peer is just created"}
	}
	// Rule 2.
	if mc == pc {
		bits := me.ChangedBits != 0 || peer.ChangedBits != 0
		switch {
		case me.Pending && !peer.Pending && bits:
			return Result{TargetBitmap, 2, "equal generations with marked blocks; this side knows it only as announced, the peer as taken (it may hold writes in it): the peer is the source"}
		case peer.Pending && !me.Pending && bits:
			return Result{SourceBitmap, 2, "equal generations with marked blocks; the peer knows it only as announced, this side as taken (it may hold writes in it): this side is the source"}
		case me.CrashedPrimary && !peer.CrashedPrimary && !peer.SecondaryCrashed():
			if proto == ProtocolC {
				return Result{TargetBitmap, 2, "equal generations; this side crashed while primary; protocol C: the survivor is the source"}
			}
			if peer.Primary {
				return Result{TargetBitmap, 2, "equal generations; this side crashed while primary; protocol A/B, but the survivor was promoted since: it is the source"}
			}
			return Result{SourceBitmap, 2, "equal generations; this side crashed while primary; protocol A/B: the crashed primary is the source"}
		case peer.CrashedPrimary && !me.CrashedPrimary && !me.SecondaryCrashed():
			if proto == ProtocolC {
				return Result{SourceBitmap, 2, "equal generations; the peer crashed while primary; protocol C: the survivor is the source"}
			}
			if me.Primary {
				return Result{SourceBitmap, 2, "equal generations; the peer crashed while primary; protocol A/B, but this node was promoted since: it is the source"}
			}
			return Result{TargetBitmap, 2, "equal generations; the peer crashed while primary; protocol A/B: the crashed primary is the source"}
		case me.CrashedPrimary && peer.CrashedPrimary && me.Primary != peer.Primary:
			if me.Primary {
				return Result{SourceBitmap, 2, "equal generations; both crashed while primary, and this node was promoted since: it is the source"}
			}
			return Result{TargetBitmap, 2, "equal generations; both crashed while primary, and the peer was promoted since: it is the source"}
		case me.CrashedPrimary && peer.CrashedPrimary:
			if me.NodeID < peer.NodeID {
				return Result{SourceBitmap, 2, "equal generations; both crashed while primary; the lower node id is the source"}
			}
			return Result{TargetBitmap, 2, "equal generations; both crashed while primary; the lower node id is the source"}
		case me.ChangedBits == 0 && peer.ChangedBits == 0:
			return Result{NoSync, 2, "equal generations, no blocks marked"}
		case me.SecondaryCrashed() && !peer.SecondaryCrashed() && !peer.Primary:
			return Result{TargetBitmap, 2, "equal generations with leftover marked blocks; this side crashed while secondary (its marked blocks may be older): the peer is the source"}
		case peer.SecondaryCrashed() && !me.SecondaryCrashed() && !me.Primary:
			return Result{SourceBitmap, 2, "equal generations with leftover marked blocks; the peer crashed while secondary (its marked blocks may be older): this side is the source"}
		case me.Primary && !peer.Primary:
			return Result{SourceBitmap, 2, "equal generations with leftover marked blocks; the primary is the source"}
		case peer.Primary && !me.Primary:
			return Result{TargetBitmap, 2, "equal generations with leftover marked blocks; the primary is the source"}
		case me.NodeID < peer.NodeID:
			return Result{SourceBitmap, 2, "equal generations with leftover marked blocks; the lower node id is the source"}
		default:
			return Result{TargetBitmap, 2, "equal generations with leftover marked blocks; the lower node id is the source"}
		}
	}
	// Rules 3 and 4. When both hold, each side changed data since the
	// other's current generation: a split brain that the two bitmaps cover.
	mutual3 := mask(peer.Bitmap) != 0 && mask(peer.Bitmap) == mc
	mutual4 := mask(me.Bitmap) != 0 && mask(me.Bitmap) == pc
	if mutual3 && mutual4 {
		return Result{SplitBrainAuto, 6, "each side changed data since the other's generation"}
	}
	if pb := mask(peer.Bitmap); pb != 0 && pb == mc {
		return Result{TargetBitmap, 3, "the peer changed data since our shared generation"}
	}
	if mb := mask(me.Bitmap); mb != 0 && mb == pc {
		return Result{SourceBitmap, 4, "this side changed data since our shared generation"}
	}
	// Rule 5.
	meInPeer, peerInMe := contains(peer.History, mc), contains(me.History, pc)
	switch {
	case meInPeer && !peerInMe:
		return Result{TargetFull, 5, "this side's generation is in the peer's history: too far behind for a bitmap"}
	case peerInMe && !meInPeer:
		return Result{SourceFull, 5, "the peer's generation is in this side's history: it is too far behind for a bitmap"}
	}
	// Rule 6.
	if mb := mask(me.Bitmap); mb != 0 && mb == mask(peer.Bitmap) {
		return Result{SplitBrainAuto, 6, "both sides changed data since the same generation"}
	}
	// Rule 7.
	if shared(me, peer) {
		return Result{SplitBrainDisconnect, 7, "the sides share history but both moved on"}
	}
	return Result{Unrelated, 8, "no shared generation: unrelated data"}
}

func contains(h []uint64, u uint64) bool {
	for _, x := range h {
		if x != 0 && mask(x) == u {
			return true
		}
	}
	return false
}

// shared reports whether the sides have any generation in common.
func shared(me, peer Side) bool {
	mine := append([]uint64{me.Current, me.Bitmap}, me.History...)
	theirs := append([]uint64{peer.Current, peer.Bitmap}, peer.History...)
	for _, a := range mine {
		if a == 0 || mask(a) == JustCreated {
			continue
		}
		for _, b := range theirs {
			if mask(a) == mask(b) {
				return true
			}
		}
	}
	return false
}
