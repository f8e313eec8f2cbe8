package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/control"
)

// TestResyncProgress runs a full sync under a resync-rate cap and checks
// what an operator sees meanwhile: percent, rate and ETA in `repctl status`
// (JSON and text), the progress bar of `repctl wait-sync`, and that the cap
// held the sync back.
func TestResyncProgress(t *testing.T) {
	const (
		size = 24 << 20
		rate = 4 << 20 // bytes/s; the bucket allows a burst of one second
	)
	nodes := newCluster(t, clusterSpec{Nodes: 2, Volume: "r0", Size: "24MiB", Protocol: "C",
		Extra: "      resync-rate: 4194304\n"})
	a, b := nodes[0], nodes[1]
	a.start()
	b.start()
	a.create("r0")
	b.create("r0")
	start := time.Now()
	a.mustRepctl("primary", "--force", "r0")

	// Mid-sync, once the rate is known: progress between 0 and 100 %, a
	// rate, an ETA.
	p := a.waitPeer("r0", "resync progress with a rate", func(p control.Peer) bool {
		return p.Replication == "SyncSource" && p.Resync != nil && p.Resync.BytesPerSec > 0
	})
	r := p.Resync
	// Internal metadata takes the end of the device.
	if size := a.volume("r0").Size; r.TotalBytes != size || r.DoneBytes <= 0 || r.DoneBytes >= size || r.Percent <= 0 || r.Percent >= 100 || r.ETASeconds < 0 {
		t.Fatalf("resync progress mid-sync: %+v", r)
	}
	if text := a.mustRepctl("status"); !strings.Contains(text, "resync ") || !strings.Contains(text, "/s") || !strings.Contains(text, " left") {
		t.Fatalf("repctl status mid-sync shows no progress:\n%s", text)
	}

	// wait-sync draws its bar until the end.
	out := a.mustRepctl("wait-sync", "r0")
	elapsed := time.Since(start)
	if !strings.Contains(out, "r0 resync") || !strings.Contains(out, "%") || !strings.HasSuffix(strings.TrimSpace(out), "r0: in sync") {
		t.Fatalf("repctl wait-sync output:\n%q", out)
	}
	// Not a speed requirement: the cap must have slowed the sync down to
	// about size/rate, less the one-second burst.
	if low := time.Duration(float64(size-rate) / rate * float64(time.Second) * 0.8); elapsed < low {
		t.Fatalf("a %d MiB sync capped at %d MiB/s took %v, under %v: the cap did not hold", size>>20, rate>>20, elapsed, low)
	}
	t.Logf("capped sync: %v; progress mid-sync %+v", elapsed, r)
}
