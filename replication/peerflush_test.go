package replication

import (
	"bytes"
	"errors"
	"testing"

	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/engine"
)

// TestPeerFlushFailureLosesNoWrite: the secondary acknowledged protocol C
// writes (in its page cache), then its flush fails, and a failed flush
// may drop them (as Linux's writeback does after EIO). The primary
// disconnects it and goes on without marking those writes for it: they
// are not known lost. What brings them back is the secondary's own
// activity log, which a failed volume leaves unclean, so that its next
// attach marks the hot extents out of sync and the reconnection resyncs
// them. This follows that path end to end over real links, power-cutting
// the secondary's unsynced data, and compares every byte.
func TestPeerFlushFailureLosesNoWrite(t *testing.T) {
	under := disk.NewCrash(64 << 20)
	faulty := disk.NewFaulty(under)
	nodes := twoNodesOn(t, [2]disk.Device{nil, faulty}, 'C', nil, nil)
	a, b := nodes[0], nodes[1]
	promoteInSync(t, a, b)
	if err := a.rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// Acknowledged writes in several extents (4 MiB each), on b only in
	// memory until a flush.
	for i := int64(0); i < 12; i++ {
		blk := bytes.Repeat([]byte{byte(0x40 + i)}, 4096)
		if err := a.rep.WriteAt(ctx, blk, i*(5<<20)+i*4096, false); err != nil {
			t.Fatal(err)
		}
	}
	if u := under.Unsynced(); u == 0 {
		t.Fatal("the secondary has no unsynced data: the test would prove nothing")
	}
	faulty.Inject(disk.Rule{Ops: disk.OpSync})
	// The primary's flush succeeds (its own disk is fine) or reports the
	// peer's failure; either way the peer must be disconnected.
	_ = a.rep.Flush(ctx)
	waitFor(t, "the primary to drop the peer whose flush failed", func() bool { return peerState(a).Conn != engine.Connected })
	waitFor(t, "the secondary's disk to fail", func() bool { return b.rep.Status().Disk == engine.Failed })
	if oos := peerState(a).OutOfSyncBytes; oos != 0 {
		t.Logf("the primary marked %d bytes for the peer", oos)
	}

	// The operator detaches b; a power cut then loses everything b had
	// not synced; b is attached again on a repaired disk.
	cfg := b.rep.cfg
	b.rep.Close()
	if err := b.vol.Close(); !errors.Is(err, ErrDiskFailed) {
		t.Fatalf("detaching a failed volume: %v, want ErrDiskFailed", err)
	}
	b.dev = under.CrashClone(func(int64) bool { return false })
	vol, rep, err := Attach("r0", Devices{Data: b.dev}, AttachOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b.vol = vol
	if rep.ALReplayed == 0 {
		t.Fatalf("re-attach replayed no activity-log extents: %+v", rep)
	}
	if b.rep, err = NewReplicator("r0", vol, b.tr, cfg); err != nil {
		t.Fatal(err)
	}
	b.rep.Start()
	waitFor(t, "the resync after re-attach", func() bool { return inSync(a) && inSync(b) && peerState(a).OutOfSyncBytes == 0 })

	want, got := make([]byte, a.vol.Size()), make([]byte, a.vol.Size())
	if err := a.vol.ReadAt(ctx, want, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.vol.ReadAt(ctx, got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, got) {
		for off := 0; off < len(want); off += 4096 {
			if !bytes.Equal(want[off:off+4096], got[off:off+4096]) {
				t.Fatalf("after the resync the secondary differs at %d (reads %#x, primary %#x)", off, got[off], want[off])
			}
		}
	}
	t.Logf("activity-log extents replayed: %d", rep.ALReplayed)
}
