package activitylog

import (
	"errors"
	"slices"
	"testing"

	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/meta"
)

const devUUID = 0x1234

func TestAcquireNeedsCommittedExtents(t *testing.T) {
	l := New(emptySlots(4), 0, 8)
	if l.TryAcquire(3, 4) {
		t.Fatal("TryAcquire succeeded on extents that are not in the log")
	}
	p, err := l.Prepare([]uint32{3, 4})
	if err != nil {
		t.Fatal(err)
	}
	if l.TryAcquire(3, 3) {
		t.Fatal("TryAcquire succeeded before the transaction was committed")
	}
	l.Commit(p)
	if !l.TryAcquire(3, 4) {
		t.Fatal("TryAcquire failed on committed extents")
	}
	if got := l.InFlight(3); got != 1 {
		t.Fatalf("InFlight(3) = %d, want 1", got)
	}
	l.Release(3, 4)
	if got := l.InFlight(4); got != 0 {
		t.Fatalf("InFlight(4) after release = %d", got)
	}
}

// The LRU victim is the least recently acquired extent with no write in
// flight; an extent with writes in flight is never evicted.
func TestEvictionPicksLeastRecentlyUsedIdle(t *testing.T) {
	l := New(emptySlots(3), 0, 8)
	p, _ := l.Prepare([]uint32{10, 11, 12})
	l.Commit(p)
	l.TryAcquire(10, 10) // 10 stays in flight
	l.TryAcquire(11, 11)
	l.Release(11, 11)
	l.TryAcquire(12, 12)
	l.Release(12, 12) // 11 is now the least recently used idle extent
	p, err := l.Prepare([]uint32{13})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Evicted, []uint32{11}) {
		t.Fatalf("evicted %v, want [11]", p.Evicted)
	}
	if l.TryAcquire(11, 11) {
		t.Fatal("an extent being evicted was acquirable before commit")
	}
	l.Commit(p)
	if l.Contains(11) || !l.Contains(13) || !l.Contains(10) {
		t.Fatalf("after commit the log holds %v, want 10, 12, 13", l.Extents())
	}
	// All three slots busy: 10 in flight, 12 and 13 acquired.
	l.TryAcquire(12, 13)
	if _, err := l.Prepare([]uint32{14}); !errors.Is(err, ErrFull) {
		t.Fatalf("Prepare with every slot in flight: err %v, want ErrFull", err)
	}
}

func TestAbortRestores(t *testing.T) {
	l := New(emptySlots(2), 0, 8)
	p, _ := l.Prepare([]uint32{1, 2})
	l.Commit(p)
	p, _ = l.Prepare([]uint32{3})
	l.Abort(p)
	if !l.TryAcquire(1, 2) || l.Contains(3) || l.Seq() != 1 {
		t.Fatal("Abort did not restore the log")
	}
}

func TestPrepareCapsUpdates(t *testing.T) {
	l := New(emptySlots(200), 0, 8)
	var want []uint32
	for e := uint32(0); e < 150; e++ {
		want = append(want, e)
	}
	p, err := l.Prepare(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tx.Updates) != meta.ALMaxUpdates {
		t.Fatalf("%d updates, want the cap %d", len(p.Tx.Updates), meta.ALMaxUpdates)
	}
}

// TestRingSurvivesCrashes is the model check of the write-ahead rule: a log
// writes its transactions to a ring on a crash-simulating disk (write, then
// sync, then commit) while writes acquire and release extents. At random
// points the disk loses power with a random subset of unsynced sectors kept.
// Replaying the surviving ring must give either the committed table or the
// committed table plus the transaction being written, and must contain every
// extent that had a write in flight.
func TestRingSurvivesCrashes(t *testing.T) {
	r := testenv.Rand(t)
	for round := 0; round < 40; round++ {
		n := []int{67, 100, 900, 2000}[r.IntN(4)]
		ring := meta.ALRingSize(uint32(n))
		dev := disk.NewCrash(int64(ring) * meta.BlockSize)
		for _, tx := range InitialTransactions(n, ring) {
			b, _ := tx.Marshal(devUUID)
			disk.WriteFull(dev, b, int64(int(tx.Seq)%ring)*meta.BlockSize)
		}
		dev.Sync()
		l := New(emptySlots(n), uint64(ring), ring)
		type hold struct{ a, b uint32 }
		var held []hold
		universe := uint32(3 * n)
		for step := 0; step < 300; step++ {
			switch r.IntN(4) {
			case 0: // release a write
				if len(held) > 0 {
					i := r.IntN(len(held))
					l.Release(held[i].a, held[i].b)
					held = slices.Delete(held, i, i+1)
				}
				continue
			case 1: // a write on committed extents
				e := r.Uint32N(universe)
				if l.TryAcquire(e, e) {
					held = append(held, hold{e, e})
				}
				continue
			}
			first := r.Uint32N(universe - 1)
			last := first + r.Uint32N(2)
			want := []uint32{}
			for e := first; e <= last; e++ {
				want = append(want, e)
			}
			p, err := l.Prepare(want)
			if errors.Is(err, ErrFull) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := p.Tx.Marshal(devUUID)
			if err != nil {
				t.Fatal(err)
			}
			disk.WriteFull(dev, b, int64(l.RingPosition(p.Tx.Seq))*meta.BlockSize)
			before := slices.Clone(l.slots)
			crashNow := r.IntN(10) == 0
			if crashNow {
				after := slices.Clone(before)
				for _, u := range p.Tx.Updates {
					after[u.Slot] = u.Extent
				}
				got := replay(t, dev.CrashClone(disk.RandomKeep(r)), n, ring)
				if !slices.Equal(got, before) && !slices.Equal(got, after) {
					t.Fatalf("round %d step %d (n=%d): replay after a crash mid-transaction is neither the committed nor the new table", round, step, n)
				}
				for _, h := range held {
					if !slices.Contains(got, h.a) {
						t.Fatalf("round %d step %d: extent %d had a write in flight but is not in the replayed log", round, step, h.a)
					}
				}
			}
			dev.Sync()
			l.Commit(p)
			if l.TryAcquire(first, last) {
				held = append(held, hold{first, last})
			}
			got := replay(t, dev.CrashClone(disk.RandomKeep(r)), n, ring)
			if !slices.Equal(got, l.slots) {
				t.Fatalf("round %d step %d: replay after a synced transaction differs from the log", round, step)
			}
		}
	}
}

func replay(t *testing.T, d disk.Device, n, ring int) []uint32 {
	t.Helper()
	var txs []meta.ALTransaction
	b := make([]byte, meta.BlockSize)
	for i := 0; i < ring; i++ {
		if err := disk.ReadFull(d, b, int64(i)*meta.BlockSize); err != nil {
			t.Fatal(err)
		}
		tx, err := meta.UnmarshalALTransaction(b, devUUID)
		if err != nil {
			continue
		}
		txs = append(txs, tx)
	}
	slots, _ := meta.ReplayAL(txs, n)
	return slots
}
