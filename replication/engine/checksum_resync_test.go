package engine_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/replicad/replicad/replication/engine"
)

// TestChecksumResyncSendsOnlyDifferingBlocks: with checksums (DRBD's
// csums-alg) a resync first compares block digests and sends data only
// for the blocks that differ. The primary rewrites N blocks while its
// peer is away, k of them with new data and the rest with what they held:
// all N are marked out of sync, the resync sends exactly the k as data,
// and both sides end identical. Without checksums all N go.
func TestChecksumResyncSendsOnlyDifferingBlocks(t *testing.T) {
	const g = 4096
	// Blocks marked (in runs, so that one digest covers several) and,
	// among them, the ones whose content changes.
	marked := []int64{3, 4, 5, 6, 100, 101, 500, 900, 901, 902, 903, 1500}
	changed := []int64{4, 6, 100, 902, 1500}
	for _, checksums := range []bool{true, false} {
		for _, chunk := range []int64{1 << 20, g} {
			t.Run(fmt.Sprintf("checksums %v, ranges of %d bytes", checksums, chunk), func(t *testing.T) {
				dp := syncedDataPair(t, 'C', func(c *engine.Config) { c.Checksums = checksums })
				dp.cut("test")
				for _, b := range marked {
					p := slices.Clone(dp.data[0][b*g : (b+1)*g])
					if slices.Contains(changed, b) {
						p = bytes.Repeat([]byte{byte(b)}, g)
					}
					dp.write(0, b*g, p)
				}
				if got := dp.eng[0].Status().Peers[0].OutOfSyncBytes; got != int64(len(marked))*g {
					t.Fatalf("setup: %d bytes marked for the peer, want %d", got, len(marked)*g)
				}
				dp.connect()
				if p := dp.eng[0].Status().Peers[0]; p.Repl != engine.SyncSource {
					t.Fatalf("setup: node 0 %v after reconnecting, want SyncSource", p.Repl)
				}
				dp.resync(0, chunk)
				dp.inSync()

				want := marked
				if checksums {
					want = changed
				}
				var got []int64
				for _, s := range dp.resyncData[0] {
					for off := s.Off; off < s.Off+s.N; off += g {
						got = append(got, off/g)
					}
				}
				if !slices.Equal(got, want) || dp.resyncBytes(0) != int64(len(want))*g {
					t.Fatalf("resync data for blocks %v (%d bytes), want %v (%d bytes)", got, dp.resyncBytes(0), want, len(want)*g)
				}
			})
		}
	}
}
