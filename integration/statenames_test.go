package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/replicad/replicad/internal/control"
)

// replEvent matches a replication-state event of a node about peer.
func replEvent(peer, old, new string) func(control.Event) bool {
	return func(e control.Event) bool {
		return e.What == "replication" && e.Peer == peer && (old == "" || e.Old == old) && e.New == new
	}
}

// seen: some event in evs matches.
func seen(evs []control.Event, match func(control.Event) bool) bool {
	for _, e := range evs {
		if match(e) {
			return true
		}
	}
	return false
}

// TestVerifyStateNames: during `repctl verify` the node that runs it passes
// through DRBD's VerifyS and its peer through VerifyT, as `repctl --json
// events` reports them, and both return to Established.
func TestVerifyStateNames(t *testing.T) {
	a, b := startPair(t, clusterSpec{Volume: "r0", Size: "16MiB", Protocol: "C"})
	t.Cleanup(func() { dumpLogsOnFailure(t, a, b) })
	evA, evB := a.events("--volume", "r0"), b.events("--volume", "r0")
	a.writeBlocks("r0", 'V', 1, 2, 3)
	a.mustRepctl("verify", "r0")

	evA.wait("n0: peer n1 Established -> VerifyS", replEvent("n1", "Established", "VerifyS"))
	evA.wait("n0: peer n1 VerifyS -> Established", replEvent("n1", "VerifyS", "Established"))
	evB.wait("n1: peer n0 Established -> VerifyT", replEvent("n0", "Established", "VerifyT"))
	evB.wait("n1: peer n0 VerifyT -> Established", replEvent("n0", "VerifyT", "Established"))
	// Each side has one role in the verify: the names are not swapped.
	if evs := evA.all(); seen(evs, replEvent("n1", "", "VerifyT")) {
		t.Fatalf("n0 ran the verify but reports VerifyT: %+v", evs)
	}
	if evs := evB.all(); seen(evs, replEvent("n0", "", "VerifyS")) {
		t.Fatalf("n1 answered the verify but reports VerifyS: %+v", evs)
	}
}

// TestPausedSyncStateNames: with three nodes, two secondaries that differ
// (n2 missed writes n0 made while it was down, n0 then stepped down) do not
// resync between themselves (docs/replication.md, "Resync comes only from
// a primary"): n1, holding the newer data, reports its peer n2 as
// PausedSyncS and n2 reports n1 as PausedSyncT; promoting n1 ends the pause
// with n2 its SyncTarget.
func TestPausedSyncStateNames(t *testing.T) {
	nodes := newCluster(t, clusterSpec{Nodes: 3, Volume: "r0", Size: "16MiB", Protocol: "C"})
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]
	t.Cleanup(func() { dumpLogsOnFailure(t, nodes...) })
	bringUpMesh(t, "r0", nodes...)

	n2.mustRepctl("down", "r0")
	for _, n := range []*node{n0, n1} {
		n.waitPeerOf("r0", "n2", "gone", func(p control.Peer) bool { return p.Connection != "Connected" })
	}
	n0.writeBlocks("r0", 'P', 7, 8, 9)
	n0.mustRepctl("secondary", "r0")
	n1.waitPeerOf("r0", "n0", "n0 secondary", func(p control.Peer) bool { return p.Role == "Secondary" })

	ev1, ev2 := n1.events("--volume", "r0"), n2.events("--volume", "r0")
	n2.mustRepctl("up", "r0")
	ev1.wait("n1: peer n2 -> PausedSyncS", replEvent("n2", "", "PausedSyncS"))
	ev2.wait("n2: peer n1 -> PausedSyncT", replEvent("n1", "", "PausedSyncT"))
	// The pause holds (no primary to end it) and the status says so too.
	if p := n1.peerNamed("r0", "n2"); p.Replication != "PausedSyncS" {
		t.Fatalf("n1's status for peer n2: %+v, want PausedSyncS", p)
	}
	if p := n2.peerNamed("r0", "n1"); p.Replication != "PausedSyncT" {
		t.Fatalf("n2's status for peer n1: %+v, want PausedSyncT", p)
	}
	for _, e := range append(ev1.all(), ev2.all()...) {
		if e.What == "replication" && (e.New == "SyncSource" || e.New == "SyncTarget") {
			t.Fatalf("two secondaries resynced between themselves: %+v", e)
		}
	}

	n1.mustRepctl("primary", "r0")
	ev2.wait("n2: peer n1 -> SyncTarget after n1's promotion", replEvent("n1", "", "SyncTarget"))
	waitMeshInSync(t, "r0", nodes...)
	img, err := os.ReadFile(filepath.Join(n2.dir, "r0.img"))
	if err != nil {
		t.Fatal(err)
	}
	if got := img[8*blockSize : 9*blockSize]; !bytes.Equal(got, block('P', 8)) {
		t.Fatalf("block 8 on n2 after the resync: %x…, want n0's write", got[:16])
	}
}
