package engine_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/replicad/replicad/replication/engine"
)

// TestInterruptedResyncResumes: a resync cut off part-way resumes where it
// stopped. The source clears a block's bit when the target acknowledges
// it, the target when it wrote it; the bits left (the union, exchanged at
// the next handshake) are what the next resync sends: the blocks not
// acknowledged, and nothing acknowledged again. Across both sessions the
// resync sends the dirty bytes plus only those that were in flight when
// the link broke. So it is when the source restarts in between (its bits
// are on disk).
func TestInterruptedResyncResumes(t *testing.T) {
	const g = 4096
	var dirty []int64 // blocks the primary writes while the peer is away
	for b := int64(10); b < 10+40; b += 2 {
		dirty = append(dirty, b)
	}
	const (
		acked   = 9 // sent, written and acknowledged before the cut
		unacked = 3 // sent and written by the target; the acks are lost
		unsent  = 2 // sent; lost on the wire
	)
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("source restarts %v", restart), func(t *testing.T) {
			dp := syncedDataPair(t, 'C', nil)
			dp.cut("test")
			for _, b := range dirty {
				dp.write(0, b*g, bytes.Repeat([]byte{byte(b)}, g))
			}
			dp.connect()
			if p := dp.eng[0].Status().Peers[0]; p.Repl != engine.SyncSource || p.OutOfSyncBytes != int64(len(dirty))*g {
				t.Fatalf("setup: node 0 %v with %d bytes out of sync, want SyncSource with %d", p.Repl, p.OutOfSyncBytes, len(dirty)*g)
			}

			// Session 1, one block per range.
			for range acked {
				if !dp.resyncStep(0, g) {
					t.Fatal("resync ran out of blocks")
				}
				dp.deliver(1) // the data, written at once: the ack is queued
				dp.deliver(0) // the ack
			}
			for range unacked {
				dp.resyncStep(0, g)
				dp.deliver(1)
			}
			for range unsent {
				dp.resyncStep(0, g)
			}
			first := slices.Clone(dp.resyncData[0])
			if len(first) != acked+unacked+unsent {
				t.Fatalf("setup: session 1 sent %d ranges, want %d", len(first), acked+unacked+unsent)
			}
			dp.cut("link broken mid-resync")
			if dp.eng[1].Disk() != engine.Inconsistent {
				t.Fatalf("setup: the target is %v after the cut, want Inconsistent", dp.eng[1].Disk())
			}
			// The bits left: on the source, what was not acknowledged;
			// on the target, what it did not write.
			left := int64(len(dirty)-acked) * g
			if got := dp.eng[0].Status().Peers[0].OutOfSyncBytes; got != left {
				t.Fatalf("after the cut the source marks %d bytes, want %d (dirty %d, acknowledged %d)", got, left, len(dirty)*g, acked*g)
			}
			if got, want := dp.eng[1].Status().Peers[0].OutOfSyncBytes, left-unacked*g; got != want {
				t.Fatalf("after the cut the target marks %d bytes, want %d", got, want)
			}
			if restart {
				dp.restart(0)
			}

			// Session 2.
			dp.resyncData = [2][]engine.Span{}
			dp.connect()
			if p := dp.eng[0].Status().Peers[0]; p.Repl != engine.SyncSource || p.OutOfSyncBytes != left {
				t.Fatalf("reconnected: node 0 %v with %d bytes out of sync, want SyncSource with %d", p.Repl, p.OutOfSyncBytes, left)
			}
			dp.resync(0, 1<<20)
			dp.inSync()
			var second []int64
			for _, s := range dp.resyncData[0] {
				for off := s.Off; off < s.Off+s.N; off += g {
					second = append(second, off/g)
				}
			}
			var want []int64 // the dirty blocks not acknowledged in session 1
			for _, b := range dirty {
				if !slices.ContainsFunc(first[:acked], func(s engine.Span) bool { return s.Off == b*g }) {
					want = append(want, b)
				}
			}
			if !slices.Equal(second, want) {
				t.Fatalf("session 2 resent blocks %v, want %v (the dirty ones not acknowledged in session 1)", second, want)
			}
			total := int64(len(first))*g + dp.resyncBytes(0)
			if wantTotal := int64(len(dirty)+unacked+unsent) * g; total != wantTotal {
				t.Fatalf("both sessions sent %d bytes, want %d: the %d dirty plus the %d in flight at the cut", total, wantTotal, len(dirty)*g, (unacked+unsent)*g)
			}
		})
	}
}
