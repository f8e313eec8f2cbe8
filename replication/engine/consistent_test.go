package engine_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/wire"
)

func fencing(p engine.FencePolicy) func(*engine.Config) {
	return func(c *engine.Config) { c.Fencing = p }
}

// syncedDisks returns two nodes' disks holding the same UpToDate data
// (node 0 was primary, node 1 resynced from it), both detached cleanly.
func syncedDisks(t *testing.T, r *rand.Rand) [2]*disk.Crash {
	t.Helper()
	ds := [2]*disk.Crash{newDisk(t, 0, 1), newDisk(t, 1, 1)}
	pr := &pair{t: t}
	for i := range ds {
		e, v := attachEngine(t, ds[i], uint32(i), []uint32{uint32(1 - i)}, 'C', r, nil)
		pr.eng[i] = e
		t.Cleanup(func() { v.Close() })
	}
	pr.exec(0, must(pr.eng[0].Promote(true)))
	pr.connect()
	pr.resync(0)
	if d := pr.eng[1].Disk(); d != engine.UpToDate {
		t.Fatalf("node 1 after its resync: %v, want UpToDate", d)
	}
	pr.exec(0, must(pr.eng[0].Demote()))
	pr.drain()
	return ds
}

// restart attaches disk d again as node id, as after a reboot.
func restart(t *testing.T, d *disk.Crash, id uint32, r *rand.Rand, tune func(*engine.Config)) *engine.Engine {
	t.Helper()
	e, _ := attachEngine(t, d, id, []uint32{1 - id}, 'C', r, tune)
	return e
}

func diskEvent(evs []engine.Event, old, now string) bool {
	for _, ev := range evs {
		if ev.What == "disk" && ev.Old == old && ev.New == now {
			return true
		}
	}
	return false
}

// TestAttachedWithFencingIsConsistent: as DRBD, data that was UpToDate
// comes back Consistent when fencing is on and the peer is not known to
// be outdated (it may have been promoted and written meanwhile), and
// UpToDate without fencing. Promotion then fences the peer first, which
// makes the data UpToDate.
func TestAttachedWithFencingIsConsistent(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ds := syncedDisks(t, r)
	for _, p := range []engine.FencePolicy{engine.DontCare, engine.ResourceOnly, engine.ResourceAndStonith} {
		e := restart(t, ds[1], 1, r, fencing(p))
		want := engine.Consistent
		if p == engine.DontCare {
			want = engine.UpToDate
		}
		if d := e.Disk(); d != want {
			t.Fatalf("%v: attached as %v, want %v", p, d, want)
		}
		if st := e.Status(); st.Disk != want {
			t.Fatalf("%v: status says %v, want %v", p, st.Disk, want)
		}
	}

	e := restart(t, ds[1], 1, r, fencing(engine.ResourceOnly))
	if _, err := e.Promote(false); !errors.Is(err, engine.ErrNeedsFencing) {
		t.Fatalf("promoting a Consistent node with its peer unknown: %v, want ErrNeedsFencing", err)
	}
	if d := e.Disk(); d != engine.Consistent {
		t.Fatalf("after the refused promotion: %v, want Consistent", d)
	}
	e.FenceResult(0, engine.FencePeerUnreachable) // resource-only: settled
	o, err := e.Promote(false)
	if err != nil {
		t.Fatalf("promotion after the peer was fenced: %v", err)
	}
	if !diskEvent(o.Events, "Consistent", "UpToDate") || e.Disk() != engine.UpToDate {
		t.Fatalf("promoted with the peer fenced: disk %v, events %+v; want Consistent -> UpToDate", e.Disk(), o.Events)
	}

	// A failed fence-peer leaves it Consistent; --force overrides.
	e = restart(t, ds[0], 0, r, fencing(engine.ResourceAndStonith))
	e.FenceResult(1, 1)
	if _, err := e.Promote(false); !errors.Is(err, engine.ErrNeedsFencing) || e.Disk() != engine.Consistent {
		t.Fatalf("after a failed fence-peer: %v, disk %v; want ErrNeedsFencing and Consistent", err, e.Disk())
	}
	o, err = e.Promote(true)
	if err != nil || !diskEvent(o.Events, "Consistent", "UpToDate") || e.Role() != engine.Primary {
		t.Fatalf("forced promotion: %v, role %v, events %+v", err, e.Role(), o.Events)
	}

	// fence-peer says the peer is primary: this node is Outdated, and a
	// forced promotion reports that, not a Consistent disk.
	// (Fresh disks: the ones above hold the outdated mark for their peer.)
	e = restart(t, syncedDisks(t, r)[1], 1, r, fencing(engine.ResourceOnly))
	o = e.FenceResult(0, engine.FencePeerIsPrimary)
	if e.Disk() != engine.Outdated || !diskEvent(o.Events, "Consistent", "Outdated") {
		t.Fatalf("fence-peer exit 6: disk %v, events %+v; want Outdated", e.Disk(), o.Events)
	}
	o, err = e.Promote(true)
	disks := 0
	for _, ev := range o.Events {
		if ev.What == "disk" {
			disks++
		}
	}
	if err != nil || disks != 1 || !diskEvent(o.Events, "Outdated", "UpToDate") {
		t.Fatalf("forced promotion of Outdated data: %v, events %+v; want one disk event, Outdated -> UpToDate", err, o.Events)
	}
}

// TestConsistentSettledByHandshake: two Consistent nodes holding the same
// data are both UpToDate once connected; a Consistent node whose peer
// wrote meanwhile becomes a sync target (Inconsistent), then UpToDate.
func TestConsistentSettledByHandshake(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	ds := syncedDisks(t, r)
	pr := &pair{t: t}
	for i := range ds {
		pr.eng[i] = restart(t, ds[i], uint32(i), r, fencing(engine.ResourceOnly))
		if d := pr.eng[i].Disk(); d != engine.Consistent {
			t.Fatalf("node %d attached as %v, want Consistent", i, d)
		}
	}
	pr.connect()
	for i := range pr.eng {
		if d := pr.eng[i].Disk(); d != engine.UpToDate || !diskEvent(pr.events[i], "Consistent", "UpToDate") {
			t.Fatalf("node %d after the handshake: %v, events %+v; want UpToDate, from Consistent", i, d, pr.events[i])
		}
		if p := pr.eng[i].Status().Peers[0]; p.Disk != engine.UpToDate {
			t.Fatalf("node %d sees its peer %v, want UpToDate", i, p.Disk)
		}
	}

	// Node 0 writes without node 1, which restarts Consistent.
	pr.exec(0, pr.eng[0].Disconnected(1, "test"))
	pr.exec(1, pr.eng[1].Disconnected(0, "test"))
	pr.queue = [2][]wire.Message{}
	pr.exec(0, pr.eng[0].FenceResult(1, engine.FencePeerUnreachable))
	pr.exec(0, must(pr.eng[0].Promote(false)))
	if _, err := pr.write(0); err != nil {
		t.Fatal(err)
	}
	pr.eng[1] = restart(t, ds[1], 1, r, fencing(engine.ResourceOnly))
	pr.events[1] = nil
	pr.connect()
	if !diskEvent(pr.events[1], "Consistent", "Inconsistent") || diskEvent(pr.events[1], "Consistent", "UpToDate") {
		t.Fatalf("node 1 behind its peer: events %+v; want Consistent -> Inconsistent only", pr.events[1])
	}
	pr.resync(0)
	if d := pr.eng[1].Disk(); d != engine.UpToDate {
		t.Fatalf("node 1 after its resync: %v, want UpToDate", d)
	}
}

// TestConsistentPeerInSyncAtHandshake: a peer whose Hello says Consistent
// and that holds this primary's data counts as UpToDate (in sync) from the
// decision on, not only once its next State says so: in the meantime a
// write would otherwise treat it as absent.
func TestConsistentPeerInSyncAtHandshake(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	e := newEngine(t, 0, []uint32{1}, 'C', r, nil)
	must(e.Promote(true))
	o := handshake(t, e, 1, func(mine, theirs *wire.Hello) { theirs.Disk = uint8(engine.Consistent) })
	p := e.Status().Peers[0]
	if p.Disk != engine.UpToDate || p.Repl != engine.Established {
		t.Fatalf("peer after a no-sync handshake: %v %v, want Established UpToDate", p.Repl, p.Disk)
	}
	found := false
	for _, ev := range o.Events {
		found = found || ev.What == "peer-disk" && ev.Old == "Consistent" && ev.New == "UpToDate"
	}
	if !found {
		t.Fatalf("no peer-disk Consistent -> UpToDate event: %+v", o.Events)
	}
}

// TestConsistentSettledByPausedDecision: with several peers and no
// primary a resync decision waits (PausedSyncS/T), but the comparison was
// made: a Consistent node that is the source (its data newer) is
// UpToDate.
func TestConsistentSettledByPausedDecision(t *testing.T) {
	e := consistent3(t, 9)
	mine := sentHello(t, must(e.Connected(1)))
	o := must(e.Receive(1, helloFrom(1, mine, mine.History[0], nil)))
	if p := e.Status().Peers[0]; p.Repl != engine.PausedSyncS {
		t.Fatalf("peer 1 after the handshake: %v, want PausedSyncS", p.Repl)
	}
	if e.Disk() != engine.UpToDate || !diskEvent(o.Events, "Consistent", "UpToDate") {
		t.Fatalf("after a paused decision as source: %v, events %+v; want UpToDate", e.Disk(), o.Events)
	}
}

// consistent3 is node 0 of three, restarted with fencing on after it was
// primary and wrote alone: Consistent, its generation newer than the one
// in its history.
func consistent3(t *testing.T, seed uint64) *engine.Engine {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed+1))
	d := newDisk(t, 0, 2)
	e, _ := attachEngine(t, d, 0, []uint32{1, 2}, 'C', r, nil)
	must(e.Promote(true))
	id, _, err := e.StartWrite(0, make([]byte, 4096), false)
	if err != nil {
		t.Fatal(err)
	}
	e.LocalWriteDone(id, nil)
	must(e.Demote())
	e, _ = attachEngine(t, d, 0, []uint32{1, 2}, 'C', r, fencing(engine.ResourceOnly))
	if e.Disk() != engine.Consistent {
		t.Fatalf("attached with fencing, peers not outdated: %v, want Consistent", e.Disk())
	}
	return e
}

// helloFrom is the Hello of peer id holding generation current (history
// hist), answering mine.
func helloFrom(id uint32, mine *wire.Hello, current uint64, hist []uint64) *wire.Hello {
	return &wire.Hello{Version: wire.Version, Volume: "r0", NodeID: id, DataSize: mine.DataSize, Granularity: mine.Granularity,
		Protocol: mine.Protocol, Role: uint8(engine.Secondary), Disk: uint8(engine.UpToDate), Flags: wire.HelloMesh,
		Current: current, History: hist}
}

func sentHello(t *testing.T, o engine.Output) *wire.Hello {
	t.Helper()
	for _, s := range o.Sends {
		if h, ok := s.Msg.(*wire.Hello); ok {
			return h
		}
	}
	t.Fatal("no Hello sent")
	return nil
}

// TestConsistentSettlesBeforeItsDecisionState: the State a Consistent node
// sends with its decision already says UpToDate when its data is at least
// the peer's; a handshake with a second peer, whose Hello went out while
// it was Consistent, does not start over; and a decision that makes it a
// (paused) sync target leaves it Consistent.
func TestConsistentSettlesBeforeItsDecisionState(t *testing.T) {
	e := consistent3(t, 21)
	h1, h2 := sentHello(t, must(e.Connected(1))), sentHello(t, must(e.Connected(2)))
	o := must(e.Receive(1, helloFrom(1, h1, h1.Current, h1.History)))
	for _, s := range o.Sends {
		if st, ok := s.Msg.(*wire.State); ok && engine.DiskState(st.Disk) != engine.UpToDate {
			t.Fatalf("State sent with a no-sync decision says %v, want UpToDate", engine.DiskState(st.Disk))
		}
	}
	o = must(e.Receive(2, helloFrom(2, h2, h2.History[0], nil)))
	if len(o.Disconnects) > 0 {
		t.Fatalf("second handshake started over: %+v", o.Disconnects)
	}
	if p := e.Status().Peers[1]; p.Repl != engine.PausedSyncS {
		t.Fatalf("peer 2: %v, want PausedSyncS", p.Repl)
	}

	// Behind a secondary peer: the resync waits, the disk stays
	// Consistent (it is not known UpToDate: that peer is newer).
	e = consistent3(t, 23)
	h1 = sentHello(t, must(e.Connected(1)))
	must(e.Receive(1, helloFrom(1, h1, 0xfeed, []uint64{h1.Current})))
	if p := e.Status().Peers[0]; p.Repl != engine.PausedSyncT || e.Disk() != engine.Consistent {
		t.Fatalf("behind peer 1: %v, disk %v; want PausedSyncT and Consistent", p.Repl, e.Disk())
	}
}

// TestConsistentPromotionWaitsForHandshake: a connected peer whose Hello
// has not arrived is neither fenced nor compared: a Consistent node is not
// promoted past it.
func TestConsistentPromotionWaitsForHandshake(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	e := restart(t, syncedDisks(t, r)[1], 1, r, fencing(engine.ResourceOnly))
	must(e.Connected(0))
	if _, err := e.Promote(false); !errors.Is(err, engine.ErrNotUpToDate) {
		t.Fatalf("promotion mid-handshake: %v, want ErrNotUpToDate", err)
	}
	if e.Disk() != engine.Consistent || e.Role() != engine.Secondary {
		t.Fatalf("after the refusal: %v %v", e.Role(), e.Disk())
	}
}
