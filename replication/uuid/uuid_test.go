package uuid

import (
	"strings"
	"testing"

	"github.com/replicad/replicad/internal/testenv"
)

// TestCompareRules covers every rule in both directions.
func TestCompareRules(t *testing.T) {
	const (
		A, B, C, D, E = 0x1000, 0x2000, 0x3000, 0x4000, 0x5000
	)
	cases := []struct {
		name  string
		me    Side
		peer  Side
		proto Protocol
		want  Decision
		rule  int
	}{
		{"both just created", Side{Current: JustCreated}, Side{Current: JustCreated}, ProtocolC, NoSync, 1},
		{"I am just created", Side{Current: JustCreated}, Side{Current: A}, ProtocolC, TargetFull, 1},
		{"peer just created", Side{Current: A}, Side{Current: JustCreated}, ProtocolC, SourceFull, 1},
		{"zero UUID counts as just created", Side{Current: 0}, Side{Current: A}, ProtocolC, TargetFull, 1},
		{"equal, clean", Side{Current: A}, Side{Current: A}, ProtocolC, NoSync, 2},
		{"bit 0 ignored", Side{Current: A | 1}, Side{Current: A}, ProtocolC, NoSync, 2},
		{"equal, I crashed, protocol C: survivor is source", Side{Current: A, CrashedPrimary: true}, Side{Current: A}, ProtocolC, TargetBitmap, 2},
		{"equal, I crashed, protocol A: crashed is source", Side{Current: A, CrashedPrimary: true}, Side{Current: A}, ProtocolA, SourceBitmap, 2},
		{"equal, peer crashed, protocol B: crashed is source", Side{Current: A}, Side{Current: A, CrashedPrimary: true}, ProtocolB, TargetBitmap, 2},
		{"equal, peer crashed, protocol A, this node promoted since: it is the source", Side{Current: A, Primary: true}, Side{Current: A, CrashedPrimary: true}, ProtocolA, SourceBitmap, 2},
		{"equal, both crashed, lower id is source", Side{NodeID: 0, Current: A, CrashedPrimary: true}, Side{NodeID: 1, Current: A, CrashedPrimary: true}, ProtocolC, SourceBitmap, 2},
		{"equal, both crashed, the higher id promoted since is source", Side{NodeID: 0, Current: A, CrashedPrimary: true}, Side{NodeID: 1, Current: A, CrashedPrimary: true, Primary: true}, ProtocolA, TargetBitmap, 2},
		{"equal, leftover bits, primary is source", Side{Current: A, Primary: true, ChangedBits: 3}, Side{Current: A}, ProtocolC, SourceBitmap, 2},
		{"equal, leftover bits, lower id is source", Side{NodeID: 2, Current: A}, Side{NodeID: 1, Current: A, ChangedBits: 1}, ProtocolC, TargetBitmap, 2},
		{"peer changed since our generation", Side{Current: A}, Side{Current: B, Bitmap: A}, ProtocolC, TargetBitmap, 3},
		{"I changed since our generation", Side{Current: B, Bitmap: A}, Side{Current: A}, ProtocolC, SourceBitmap, 4},
		// Rules 3 and 4 both hold: each side marks changes since the
		// other's current generation. DRBD's order taken literally makes
		// each side the target (not a mirror image); both changed data the
		// other lacks, and the two bitmaps cover it: an automatically
		// recoverable split brain.
		{"the peer changed since my generation and I since its: split brain", Side{Current: B, Bitmap: A}, Side{Current: A, Bitmap: B}, ProtocolC, SplitBrainAuto, 6},
		{"I am in the peer's history", Side{Current: A}, Side{Current: C, History: []uint64{B, A}}, ProtocolC, TargetFull, 5},
		{"peer is in my history", Side{Current: C, History: []uint64{B, A}}, Side{Current: A}, ProtocolC, SourceFull, 5},
		{"split brain from a shared bitmap UUID", Side{Current: B, Bitmap: A}, Side{Current: C, Bitmap: A}, ProtocolC, SplitBrainAuto, 6},
		{"shared history only", Side{Current: B, History: []uint64{A}}, Side{Current: C, History: []uint64{A}}, ProtocolC, SplitBrainDisconnect, 7},
		{"shared history through a bitmap", Side{Current: D, Bitmap: B, History: []uint64{A}}, Side{Current: E, Bitmap: C, History: []uint64{A}}, ProtocolC, SplitBrainDisconnect, 7},
		{"unrelated", Side{Current: A, History: []uint64{B}}, Side{Current: C, History: []uint64{D}}, ProtocolC, Unrelated, 8},
		// A secondary took a dying primary's new generation B (tentative);
		// another secondary, promoted, moved from A to C and marks for it.
		{"tentative unknown to the peer counts as the one before", Side{Current: B, History: []uint64{A}, Tentative: true}, Side{Current: C, Bitmap: A, History: []uint64{A}, Primary: true}, ProtocolC, TargetBitmap, 3},
		{"same without the flag is a split brain", Side{Current: B, History: []uint64{A}}, Side{Current: C, Bitmap: A, History: []uint64{A}}, ProtocolC, SplitBrainDisconnect, 7},
		{"tentative against the primary that died before taking it: no split brain, so no settling", Side{Current: B, History: []uint64{A}, Tentative: true}, Side{Current: A, CrashedPrimary: true}, ProtocolC, SourceFull, 5},
		// Two secondaries after their primary died: m took B and marked
		// since A for n, which was outside the primary's set. Settling m
		// would make them look equal and could make n the source.
		{"tentative with marks for the peer stays the source", Side{Current: B, Bitmap: A, History: []uint64{A}, Tentative: true}, Side{Current: A}, ProtocolC, SourceBitmap, 4},
		{"tentative the peer knows stays", Side{Current: B, History: []uint64{A}, Tentative: true}, Side{Current: C, Bitmap: B, History: []uint64{B, A}}, ProtocolC, TargetBitmap, 3},
		{"tentative equal to the peer's current", Side{Current: B, History: []uint64{A}, Tentative: true}, Side{Current: B, History: []uint64{A}}, ProtocolC, NoSync, 2},
		// A primary under quorum took B alone, marking for the absent
		// peer since A, then lost quorum and stepped down; the majority
		// promoted that peer, still at A. B holds no acknowledged write.
		{"generation taken alone by a former primary counts as the one before", Side{Current: B, Bitmap: A, History: []uint64{A}, Tentative: true, Uncommitted: true, ChangedBits: 1}, Side{Current: A, Primary: true}, ProtocolC, TargetBitmap, 2},
		{"same without the alone mark: this side is the source", Side{Current: B, Bitmap: A, History: []uint64{A}, Tentative: true, ChangedBits: 1}, Side{Current: A, Primary: true}, ProtocolC, SourceBitmap, 4},
		{"taken alone, still primary: it counts", Side{Current: B, Bitmap: A, History: []uint64{A}, Tentative: true, Uncommitted: true, Primary: true, ChangedBits: 1}, Side{Current: A}, ProtocolC, SourceBitmap, 4},
		{"taken alone, known to the peer: it counts", Side{Current: B, History: []uint64{A}, Tentative: true, Uncommitted: true}, Side{Current: C, Bitmap: B, History: []uint64{B, A}, Primary: true}, ProtocolC, TargetBitmap, 3},
		{"taken alone, against a secondary: it counts (sync targets may be resyncing towards it)", Side{NodeID: 2, Current: B, Bitmap: A, History: []uint64{A}, Tentative: true, Uncommitted: true, ChangedBits: 1}, Side{NodeID: 1, Current: A}, ProtocolC, SourceBitmap, 4},
		{"taken alone, against a primary it is newer than: it counts (a void generation must not spread)", Side{Current: B, History: []uint64{A, D}, Tentative: true, Uncommitted: true, ChangedBits: 1}, Side{Current: D, Primary: true}, ProtocolC, SourceFull, 5},
		{"taken alone, after a power cut, against a new primary that also crashed as primary", Side{NodeID: 0, Current: B, Bitmap: A, History: []uint64{A}, Tentative: true, Uncommitted: true, CrashedPrimary: true, ChangedBits: 1}, Side{NodeID: 2, Current: A, CrashedPrimary: true, Primary: true}, ProtocolC, TargetBitmap, 2},
		{"taken alone by both: a split brain, where both count as the ones before", Side{NodeID: 1, Current: B, Bitmap: A, History: []uint64{A}, Tentative: true, Uncommitted: true, ChangedBits: 1}, Side{NodeID: 2, Current: C, Bitmap: A, History: []uint64{A}, Tentative: true, Uncommitted: true, ChangedBits: 1}, ProtocolC, SourceBitmap, 2},
		{"uncommitted, against a primary without quorum: it counts (a cut-off primary proves nothing)", Side{Current: B, Bitmap: A, History: []uint64{A}, Tentative: true, Uncommitted: true, ChangedBits: 1}, Side{Current: A, Primary: true, NoQuorum: true}, ProtocolC, SourceBitmap, 4},
		// Two secondaries after their primary was cut off: it announced
		// B; node 1 heard only that, node 2 also heard it taken and
		// holds writes node 1 lacks (marked), held for B.
		{"equal, leftover bits, known only as announced: the side that knows it taken is the source", Side{NodeID: 1, Current: B, History: []uint64{A}, Tentative: true, Uncommitted: true, Pending: true}, Side{NodeID: 2, Current: B, History: []uint64{A}, Tentative: true, Uncommitted: true, ChangedBits: 1}, ProtocolC, TargetBitmap, 2},
		{"same, both only announced: the lower node id", Side{NodeID: 1, Current: B, History: []uint64{A}, Tentative: true, Pending: true}, Side{NodeID: 2, Current: B, History: []uint64{A}, Tentative: true, Pending: true, ChangedBits: 1}, ProtocolC, SourceBitmap, 2},
		{"known only as announced, against the crashed primary that took it, protocol C: the crashed primary is the source", Side{NodeID: 1, Current: B, History: []uint64{A}, Tentative: true, Pending: true, ChangedBits: 1}, Side{NodeID: 0, Current: B, History: []uint64{A}, CrashedPrimary: true, ChangedBits: 1}, ProtocolC, TargetBitmap, 2},
		// Node 1 lost power while secondary: writes it acknowledged may
		// be gone from its replayed blocks, which node 2 holds.
		{"equal, leftover bits, this side crashed while secondary: the peer is the source", Side{NodeID: 1, Current: A, CrashedSecondary: true, ChangedBits: 5}, Side{NodeID: 2, Current: A}, ProtocolC, TargetBitmap, 2},
		{"equal, leftover bits, both crashed while secondary: the lower node id", Side{NodeID: 1, Current: A, CrashedSecondary: true, ChangedBits: 5}, Side{NodeID: 2, Current: A, CrashedSecondary: true}, ProtocolC, SourceBitmap, 2},
		// Both lost power: the secondary is no survivor that holds the
		// crashed primary's acknowledged writes (the default simulation,
		// seed 1795472668620204464: with it as the source, three nodes
		// paused in a cycle).
		{"equal, crashed primary against a crashed secondary, protocol C: the crashed primary is the source", Side{NodeID: 2, Current: A, CrashedPrimary: true, ChangedBits: 5}, Side{NodeID: 1, Current: A, CrashedSecondary: true, ChangedBits: 5}, ProtocolC, SourceBitmap, 2},
		{"equal, crashed as primary and then as secondary counts as a crashed primary", Side{NodeID: 3, Current: A, CrashedPrimary: true, CrashedSecondary: true, ChangedBits: 5}, Side{NodeID: 1, Current: A, CrashedSecondary: true, ChangedBits: 5}, ProtocolB, SourceBitmap, 2},
		{"equal, a primary against a crashed secondary: the primary", Side{NodeID: 2, Current: A, ChangedBits: 5, Primary: true}, Side{NodeID: 1, Current: A, CrashedSecondary: true}, ProtocolC, SourceBitmap, 2},
		{"known only as announced, no bits: no sync", Side{NodeID: 1, Current: B, History: []uint64{A}, Tentative: true, Pending: true}, Side{NodeID: 2, Current: B, History: []uint64{A}}, ProtocolC, NoSync, 2},
		{"taken alone, the majority moved on", Side{Current: B, Bitmap: A, History: []uint64{A}, Tentative: true, Uncommitted: true, ChangedBits: 1}, Side{Current: C, Bitmap: A, History: []uint64{A}, Primary: true}, ProtocolC, TargetBitmap, 3},
	}
	for _, c := range cases {
		got := Compare(c.me, c.peer, c.proto)
		if got.Decision != c.want || got.Rule != c.rule {
			t.Errorf("%s: %v by rule %d (%s); want %v by rule %d", c.name, got.Decision, got.Rule, got.Reason, c.want, c.rule)
		}
		back := Compare(c.peer, c.me, c.proto)
		if back.Decision != c.want.Mirror() {
			t.Errorf("%s: mirrored comparison gives %v, want %v", c.name, back.Decision, c.want.Mirror())
		}
	}
}

// TestCompareSymmetric: random sides drawn from a small UUID pool always
// give mirror-image decisions, so both ends agree without negotiating.
func TestCompareSymmetric(t *testing.T) {
	r := testenv.Rand(t)
	pool := []uint64{0, JustCreated, 0x10, 0x11, 0x20, 0x30, 0x40}
	pick := func() uint64 { return pool[r.IntN(len(pool))] }
	side := func(id uint32) Side {
		s := Side{NodeID: id, Current: pick(), Bitmap: pick(), CrashedPrimary: r.IntN(3) == 0, Primary: r.IntN(3) == 0, ChangedBits: int64(r.IntN(3)), Tentative: r.IntN(3) == 0}
		s.Uncommitted = s.Tentative && r.IntN(2) == 0
		s.Pending = s.Tentative && r.IntN(2) == 0
		s.CrashedSecondary = !s.Primary && !s.CrashedPrimary && r.IntN(3) == 0
		s.NoQuorum = s.Primary && r.IntN(3) == 0
		for i := r.IntN(3); i > 0; i-- {
			s.History = append(s.History, pick())
		}
		return s
	}
	voided := 0
	for i := 0; i < 20000; i++ {
		a, b := side(1), side(2)
		if a.Primary && b.Primary {
			b.Primary = false
		}
		proto := []Protocol{ProtocolA, ProtocolB, ProtocolC}[r.IntN(3)]
		x, y := Compare(a, b, proto), Compare(b, a, proto)
		if x.Decision.Mirror() != y.Decision {
			t.Fatalf("asymmetric: %+v vs %+v (%c): %v/%v (%s | %s)", a, b, proto, x.Decision, y.Decision, x.Reason, y.Reason)
		}
		// A void generation is only ever given up, never spread: the side
		// holding it is the target, and only a primary with quorum voids.
		if strings.Contains(x.Reason, "an uncommitted generation counted as the one before it") {
			voided++
			aHolds := a.Uncommitted && !a.Primary
			voider := b
			if !aHolds {
				voider = a
			}
			if aHolds != x.Decision.IsTarget() || voider.NoQuorum || !voider.Primary {
				t.Fatalf("voided: %+v vs %+v (%c): %v (%s); want the side with the uncommitted generation the target of a primary with quorum", a, b, proto, x.Decision, x.Reason)
			}
		}
	}
	if voided == 0 {
		t.Fatal("no comparison voided a generation: the check above never ran")
	}
}

func TestResolveSplitBrain(t *testing.T) {
	d := DefaultPolicies()
	cases := []struct {
		name     string
		me, peer SBSide
		p        Policies
		want     Verdict
	}{
		{"default disconnects", SBSide{Changes: 1}, SBSide{Changes: 0}, d, StayDisconnected},
		{"zero changes: mine", SBSide{NodeID: 1}, SBSide{NodeID: 2, Changes: 5}, Policies{After0Pri: PolicyDiscardZeroChanges}, DiscardMine},
		{"zero changes: peer's", SBSide{NodeID: 1, Changes: 5}, SBSide{NodeID: 2}, Policies{After0Pri: PolicyDiscardZeroChanges}, DiscardPeer},
		{"zero changes: both changed", SBSide{Changes: 1}, SBSide{NodeID: 2, Changes: 5}, Policies{After0Pri: PolicyDiscardZeroChanges}, StayDisconnected},
		{"zero changes: neither, tie by node id", SBSide{NodeID: 3}, SBSide{NodeID: 2}, Policies{After0Pri: PolicyDiscardZeroChanges}, DiscardMine},
		{"least changes", SBSide{NodeID: 1, Changes: 2}, SBSide{NodeID: 2, Changes: 9}, Policies{After0Pri: PolicyDiscardLeastChanges}, DiscardMine},
		{"least changes tie", SBSide{NodeID: 1, Changes: 4}, SBSide{NodeID: 2, Changes: 4}, Policies{After0Pri: PolicyDiscardLeastChanges}, DiscardPeer},
		{"younger primary loses", SBSide{NodeID: 1, PrimaryBeforeSplit: true}, SBSide{NodeID: 2}, Policies{After0Pri: PolicyDiscardYoungerPrimary}, DiscardPeer},
		{"older primary loses", SBSide{NodeID: 1, PrimaryBeforeSplit: true}, SBSide{NodeID: 2}, Policies{After0Pri: PolicyDiscardOlderPrimary}, DiscardMine},
		{"1pri disconnect", SBSide{Primary: true}, SBSide{NodeID: 2}, Policies{After1Pri: PolicyDisconnect}, StayDisconnected},
		{"1pri discard-secondary, I am primary", SBSide{Primary: true, Changes: 1}, SBSide{NodeID: 2, Changes: 100}, Policies{After1Pri: PolicyDiscardSecondary}, DiscardPeer},
		{"1pri discard-secondary, I am secondary", SBSide{}, SBSide{NodeID: 2, Primary: true}, Policies{After1Pri: PolicyDiscardSecondary}, DiscardMine},
		{"1pri consensus agrees", SBSide{Primary: true, Changes: 5}, SBSide{NodeID: 2}, Policies{After0Pri: PolicyDiscardZeroChanges, After1Pri: PolicyConsensus}, DiscardPeer},
		{"1pri consensus refuses to discard the primary", SBSide{Primary: true}, SBSide{NodeID: 2, Changes: 5}, Policies{After0Pri: PolicyDiscardZeroChanges, After1Pri: PolicyConsensus}, StayDisconnected},
		{"2pri always disconnects", SBSide{Primary: true}, SBSide{NodeID: 2, Primary: true}, Policies{After0Pri: PolicyDiscardLeastChanges, After1Pri: PolicyDiscardSecondary, After2Pri: PolicyDisconnect}, StayDisconnected},
	}
	for _, c := range cases {
		got, why := Resolve(c.me, c.peer, c.p)
		if got != c.want {
			t.Errorf("%s: %v (%s), want %v", c.name, got, why, c.want)
		}
		if back, _ := Resolve(c.peer, c.me, c.p); back != got.mirror() {
			t.Errorf("%s: mirrored resolution %v, want %v", c.name, back, got.mirror())
		}
	}
	if err := (Policies{After0Pri: "discard-everything", After1Pri: PolicyConsensus, After2Pri: PolicyDisconnect}).Validate(); err == nil {
		t.Error("unknown policy accepted")
	}
}
