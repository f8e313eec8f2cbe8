package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/meta"
)

var ctx = context.Background()

func smallGeometry() meta.Geometry {
	g := meta.DefaultGeometry()
	g.ALExtentSize = 1 << 20
	g.ALExtents = 67
	return g
}

func newVolume(t *testing.T, d disk.Device, opts CreateOptions) *Volume {
	t.Helper()
	if opts.Geometry == (meta.Geometry{}) {
		opts.Geometry = smallGeometry()
	}
	if _, err := CreateMetadata(Devices{Data: d}, opts); err != nil {
		t.Fatal(err)
	}
	v, _, err := Attach("v", Devices{Data: d}, AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestWriteReadPersistAcrossCleanDetach(t *testing.T) {
	d := disk.NewMem(64 << 20)
	v := newVolume(t, d, CreateOptions{Standalone: true})
	if st := v.Status(); st.Disk != UpToDate || v.Size() <= 0 || v.Size() >= 64<<20 {
		t.Fatalf("standalone volume: disk %s size %d", st.Disk, v.Size())
	}
	p := bytes.Repeat([]byte("replicad"), 1024)
	if err := v.WriteAt(ctx, p, 5<<20+17, false); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteAt(ctx, p, 9<<20, true); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteZeroes(ctx, 5<<20+17, 100, true, false); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	d.Reopen()
	v, rep, err := Attach("v", Devices{Data: d}, AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if rep.ALReplayed != 0 || rep.CrashedPrimary {
		t.Fatalf("clean detach followed by attach replayed the log: %+v", rep)
	}
	got := make([]byte, len(p))
	v.ReadAt(ctx, got, 5<<20+17)
	want := bytes.Clone(p)
	clear(want[:100])
	if !bytes.Equal(got, want) {
		t.Fatal("data after re-attach differs")
	}
}

func TestRangeErrors(t *testing.T) {
	v := newVolume(t, disk.NewMem(16<<20), CreateOptions{Standalone: true})
	defer v.Close()
	size := v.Size()
	if err := v.WriteAt(ctx, make([]byte, 10), size-5, false); !errors.Is(err, ErrNoSpace) {
		t.Errorf("write past the end: %v, want ErrNoSpace", err)
	}
	if err := v.WriteZeroes(ctx, size, 1, false, false); !errors.Is(err, ErrNoSpace) {
		t.Errorf("zero past the end: %v, want ErrNoSpace", err)
	}
	if err := v.ReadAt(ctx, make([]byte, 10), size-5); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("read past the end: %v, want ErrOutOfRange", err)
	}
	if err := v.ReadAt(ctx, make([]byte, 1), -1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("negative offset: %v, want ErrOutOfRange", err)
	}
}

func TestCreateRefusesExistingMetadata(t *testing.T) {
	d := disk.NewMem(16 << 20)
	opts := CreateOptions{Geometry: smallGeometry(), NodeID: 3}
	if _, err := CreateMetadata(Devices{Data: d}, opts); err != nil {
		t.Fatal(err)
	}
	_, err := CreateMetadata(Devices{Data: d}, opts)
	if !errors.Is(err, ErrMetadataExists) || !strings.Contains(err.Error(), "node 3") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second create-md: %v", err)
	}
	opts.Force = true
	if _, err := CreateMetadata(Devices{Data: d}, opts); err != nil {
		t.Fatalf("create-md --force: %v", err)
	}
	// Damage one copy: still "exists"; damage both: still exists (damaged).
	d.WriteAt([]byte{9}, d.Size()-meta.BlockSize+100)
	d.WriteAt([]byte{9}, d.Size()-2*meta.BlockSize+100)
	opts.Force = false
	if _, err := CreateMetadata(Devices{Data: d}, opts); !errors.Is(err, ErrMetadataExists) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("create-md over damaged metadata: %v", err)
	}
}

func TestAttachWithoutMetadata(t *testing.T) {
	if _, _, err := Attach("v", Devices{Data: disk.NewMem(16 << 20)}, AttachOptions{}); !errors.Is(err, ErrNoMetadata) {
		t.Fatalf("err %v, want ErrNoMetadata", err)
	}
}

func TestExternalMetadataSizeMismatch(t *testing.T) {
	data, md := disk.NewMem(64<<20), disk.NewMem(1<<20)
	if _, err := CreateMetadata(Devices{Data: data, Meta: md}, CreateOptions{Geometry: smallGeometry()}); err != nil {
		t.Fatal(err)
	}
	v, _, err := Attach("v", Devices{Data: data, Meta: md}, AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Size() != 64<<20 {
		t.Fatalf("external metadata: data size %d, want the whole device", v.Size())
	}
	v.Close()
	md.Reopen()
	_, _, err = Attach("v", Devices{Data: disk.NewMem(32 << 20), Meta: md}, AttachOptions{})
	var se *meta.SizeError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "32.0 MiB") || !strings.Contains(err.Error(), "64.0 MiB") {
		t.Fatalf("smaller backing device: %v, want a size error with both sizes", err)
	}
	_, err = CreateMetadata(Devices{Data: disk.NewMem(64 << 30), Meta: disk.NewMem(4096)}, CreateOptions{Geometry: smallGeometry()})
	if !errors.As(err, &se) || se.What != "metadata device" {
		t.Fatalf("tiny metadata device: %v", err)
	}
}

func TestDiskErrorsAreReportedAndSticky(t *testing.T) {
	mem := disk.NewMem(16 << 20)
	f := disk.NewFaulty(mem)
	v := newVolume(t, f, CreateOptions{Standalone: true})
	defer v.Close()
	p := make([]byte, 4096)
	if err := v.WriteAt(ctx, p, 0, false); err != nil {
		t.Fatal(err)
	}
	f.Inject(disk.Rule{Ops: disk.OpRead, Times: 1})
	if err := v.ReadAt(ctx, p, 0); !errors.Is(err, ErrIO) {
		t.Fatalf("read error: %v, want ErrIO", err)
	}
	if err := v.ReadAt(ctx, p, 0); err != nil {
		t.Fatalf("a read error must not poison later reads: %v", err)
	}
	f.Inject(disk.Rule{Ops: disk.OpSync, Times: 1})
	if err := v.Flush(ctx); !errors.Is(err, ErrDiskFailed) {
		t.Fatalf("sync error: %v, want ErrDiskFailed", err)
	}
	// The sync error was reported once by the device; the volume must not
	// pretend the next flush makes anything durable.
	if err := v.Flush(ctx); !errors.Is(err, ErrDiskFailed) {
		t.Fatalf("flush after a failed sync: %v, want ErrDiskFailed", err)
	}
	if err := v.WriteAt(ctx, p, 0, false); !errors.Is(err, ErrDiskFailed) {
		t.Fatalf("write after a failed sync: %v, want ErrDiskFailed", err)
	}
	if st := v.Status(); st.Disk != Failed || st.DiskError == "" {
		t.Fatalf("status after failure: %+v", st)
	}
}

// TestCrashConsistency is the model check of the durability contract and of
// "no silent divergence". A volume with one tracked (disconnected) peer slot
// takes random writes, FUA writes, zeroing and flushes on a crash-simulating
// disk; at a random point the power fails, keeping a random subset of
// unsynced sectors. After re-attach:
//   - every write acknowledged before the last completed Flush, and every
//     FUA write, reads back (unless overwritten later);
//   - every block written since the peer slot was assigned is marked out of
//     sync in its bitmap (from the bitmap on disk or the activity-log replay);
//   - the volume was flagged as a crashed primary.
func TestCrashConsistency(t *testing.T) {
	r := testenv.Rand(t)
	for round := 0; round < 30; round++ {
		crashConsistencyRound(t, r, round)
	}
}

func crashConsistencyRound(t *testing.T, r *rand.Rand, round int) {
	const devSize = 96 << 20
	const block = 4096
	d := disk.NewCrash(devSize)
	v := newVolume(t, d, CreateOptions{Standalone: true})
	if _, err := v.AssignPeerSlot(1); err != nil {
		t.Fatal(err)
	}
	if err := v.SetPrimary(true); err != nil {
		t.Fatal(err)
	}
	nblocks := v.Size() / block
	durable := map[int64]byte{} // block -> value guaranteed after a crash
	latest := map[int64]byte{}  // block -> latest value written
	written := map[int64]bool{}
	steps := 50 + r.IntN(200)
	for i := 0; i < steps; i++ {
		b := r.Int64N(nblocks)
		// Cluster writes so the 67-extent log both hits and evicts.
		if r.IntN(3) > 0 {
			b = r.Int64N(min(nblocks, 40*256))
		}
		val := byte(1 + r.IntN(255))
		switch r.IntN(6) {
		case 0:
			if err := v.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for k, x := range latest {
				durable[k] = x
			}
		case 1:
			if err := v.WriteAt(ctx, bytes.Repeat([]byte{val}, block), b*block, true); err != nil {
				t.Fatal(err)
			}
			latest[b], durable[b], written[b] = val, val, true
		case 2:
			if err := v.WriteZeroes(ctx, b*block, block, r.IntN(2) == 0, false); err != nil {
				t.Fatal(err)
			}
			latest[b], written[b] = 0, true
			delete(durable, b)
		default:
			if err := v.WriteAt(ctx, bytes.Repeat([]byte{val}, block), b*block, false); err != nil {
				t.Fatal(err)
			}
			latest[b], written[b] = val, true
			delete(durable, b) // an unflushed overwrite may or may not survive
		}
	}
	clone := d.CrashClone(disk.RandomKeep(r))
	v2, rep, err := Attach("v", Devices{Data: clone}, AttachOptions{})
	if err != nil {
		t.Fatalf("round %d: attach after crash: %v", round, err)
	}
	defer v2.Close()
	if !rep.CrashedPrimary {
		t.Fatalf("round %d: a primary that lost power was not flagged as crashed", round)
	}
	buf := make([]byte, block)
	for b, val := range durable {
		v2.ReadAt(ctx, buf, b*block)
		if buf[0] != val || buf[block-1] != val {
			t.Fatalf("round %d: block %d reads %d, but %d was durable before the crash", round, b, buf[0], val)
		}
	}
	v2.mu.Lock()
	bm := v2.mu.bitmaps[0]
	for b := range written {
		if !bm.Test(b) {
			v2.mu.Unlock()
			t.Fatalf("round %d: block %d was written while the peer was away but is not marked out of sync after the crash", round, b)
		}
	}
	v2.mu.Unlock()
}

// TestConcurrentWritersWithEvictions hammers a 67-extent activity log from
// many goroutines over far more extents, so that transactions, evictions and
// the "log full" wait all happen, then checks every block.
func TestConcurrentWritersWithEvictions(t *testing.T) {
	d := disk.NewMem(256 << 20)
	v := newVolume(t, d, CreateOptions{Standalone: true})
	if _, err := v.AssignPeerSlot(1); err != nil {
		t.Fatal(err)
	}
	const block = 64 << 10
	nblocks := v.Size() / block
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for b := int64(g); b < nblocks; b += 16 {
				p := bytes.Repeat([]byte{byte(b)}, block)
				if err := v.WriteAt(ctx, p, b*block, b%7 == 0); err != nil {
					errs <- fmt.Errorf("block %d: %w", b, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := v.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, block)
	for b := int64(0); b < nblocks; b++ {
		v.ReadAt(ctx, got, b*block)
		if got[0] != byte(b) || got[block-1] != byte(b) {
			t.Fatalf("block %d holds %d", b, got[0])
		}
	}
	st := v.Status()
	if len(st.Slots) != 1 || st.Slots[0].OutOfSyncBytes != nblocks*block {
		t.Fatalf("out-of-sync bytes %+v, want the %d bytes written", st.Slots, nblocks*block)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteAt(ctx, got, 0, false); !errors.Is(err, ErrDetached) {
		t.Fatalf("write after Close: %v, want ErrDetached", err)
	}
}

// A read-only attach, even of a volume that crashed while primary, writes
// nothing; the next read-write attach still sees the crash.
func TestReadOnlyAttachWritesNothing(t *testing.T) {
	mem := disk.NewMem(32 << 20)
	v := newVolume(t, mem, CreateOptions{Standalone: true})
	v.AssignPeerSlot(1)
	v.SetPrimary(true)
	v.WriteAt(ctx, []byte("x"), 5<<20, false) // crash: no Close
	f := disk.NewFaulty(mem)
	f.Inject(disk.Rule{Ops: disk.OpWrite | disk.OpSync | disk.OpZero})
	ro, rep, err := Attach("v", Devices{Data: f}, AttachOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only attach tried to write: %v", err)
	}
	if !rep.CrashedPrimary || rep.ALReplayed == 0 {
		t.Fatalf("read-only attach report %+v", rep)
	}
	if err := ro.WriteAt(ctx, []byte("y"), 0, false); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write to a read-only volume: %v", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatalf("read-only close: %v", err)
	}
	mem.Reopen()
	rw, rep, err := Attach("v", Devices{Data: mem}, AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if !rep.CrashedPrimary {
		t.Fatal("the crash was forgotten after a read-only attach")
	}
}

// TestCrashWhileSecondaryIsFlagged: a volume that loses power while
// secondary, with writes in its activity log, comes back flagged as a
// crashed secondary (its replayed blocks may be older than its peers'),
// not as a crashed primary; one that crashed as primary is not flagged
// as a crashed secondary, nor is it when it crashes again as secondary
// before resyncing (it stays a crashed primary).
func TestCrashWhileSecondaryIsFlagged(t *testing.T) {
	fresh := func() (*Volume, *disk.Crash) {
		d := disk.NewCrash(96 << 20)
		v := newVolume(t, d, CreateOptions{Standalone: true})
		if _, err := v.AssignPeerSlot(1); err != nil {
			t.Fatal(err)
		}
		return v, d
	}
	for _, primary := range []bool{false, true} {
		v2, rep, _ := writeThenCrash(t, fresh, primary)
		g := v2.Generation()
		v2.Close()
		if rep.ALReplayed == 0 || rep.CrashedPrimary != primary || g.CrashedPrimary != primary || g.CrashedSecondary == primary {
			t.Fatalf("crashed as primary %v: replayed %d, crashed primary %v/%v, crashed secondary %v", primary, rep.ALReplayed, rep.CrashedPrimary, g.CrashedPrimary, g.CrashedSecondary)
		}
	}
	v2, _, d2 := writeThenCrash(t, fresh, true)
	v3, _, _ := writeThenCrash(t, func() (*Volume, *disk.Crash) { return v2, d2 }, false)
	g := v3.Generation()
	v3.Close()
	if !g.CrashedPrimary || g.CrashedSecondary {
		t.Fatalf("crashed as primary, then as secondary: crashed primary %v, crashed secondary %v; want a crashed primary only", g.CrashedPrimary, g.CrashedSecondary)
	}
}

// writeThenCrash takes the volume open gives, writes a block in the
// given role, loses power (unsynced sectors kept at random) and attaches
// what is left.
func writeThenCrash(t *testing.T, open func() (*Volume, *disk.Crash), primary bool) (*Volume, AttachReport, *disk.Crash) {
	t.Helper()
	v, d := open()
	if err := v.SetPrimary(primary); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteAt(ctx, bytes.Repeat([]byte{7}, 4096), 0, false); err != nil {
		t.Fatal(err)
	}
	clone := d.CrashClone(disk.RandomKeep(testenv.Rand(t)))
	v2, rep, err := Attach("v", Devices{Data: clone}, AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return v2, rep, clone
}

// TestEvictedExtentDataSurvivesPowerLoss: a write the peer acknowledged
// (its bit cleared) sits unsynced in an extent that then leaves the
// activity log. After a power cut the block holds that write, or the
// replayed log or bitmap marks it: otherwise this node would come back
// different from its peer with nothing recording it. With internal
// metadata the log's own sync covers the data; with metadata on another
// device the data device must be synced before an extent leaves.
func TestEvictedExtentDataSurvivesPowerLoss(t *testing.T) {
	for _, external := range []bool{false, true} {
		data := disk.NewCrash(128 << 20)
		devs := Devices{Data: data}
		var md *disk.Crash
		if external {
			md = disk.NewCrash(8 << 20)
			devs.Meta = md
		}
		if _, err := CreateMetadata(devs, CreateOptions{Geometry: smallGeometry()}); err != nil {
			t.Fatal(err)
		}
		v, _, err := Attach("v", devs, AttachOptions{})
		if err != nil {
			t.Fatal(err)
		}
		slot, err := v.AssignPeerSlot(1)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.SetPrimary(true); err != nil {
			t.Fatal(err)
		}
		const block = 4096
		extent := int64(smallGeometry().ALExtentSize)
		write := func(off int64, val byte) {
			if err := v.WriteAt(ctx, bytes.Repeat([]byte{val}, block), off, false); err != nil {
				t.Fatal(err)
			}
			v.ClearInSync(slot, off, block) // the peer acknowledged it
		}
		write(0, 7)
		// One write in each of more extents than the log holds: extent 0
		// leaves the log.
		for e := int64(1); e <= int64(smallGeometry().ALExtents)+4; e++ {
			write(e*extent, 1)
		}
		keepNone := func(int64) bool { return false }
		cut := Devices{Data: data.CrashClone(keepNone)}
		if external {
			cut.Meta = md.CrashClone(keepNone)
		}
		v2, _, err := Attach("v", cut, AttachOptions{})
		if err != nil {
			t.Fatalf("external %v: attach after the power cut: %v", external, err)
		}
		buf := make([]byte, block)
		if err := v2.ReadAt(ctx, buf, 0); err != nil {
			t.Fatal(err)
		}
		v2.mu.Lock()
		marked := v2.mu.bitmaps[slot].Test(0)
		v2.mu.Unlock()
		if buf[0] != 7 && !marked {
			t.Errorf("external metadata %v: block 0 lost the acknowledged write (reads %d) and nothing marks it out of sync", external, buf[0])
		}
		v2.Close()
		v.Close()
	}
}
