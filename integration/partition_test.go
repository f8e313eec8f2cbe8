package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/replication/wire"
)

// vethPair is two network namespaces (rpdrt-PID-a, rpdrt-PID-b) joined by
// a veth pair, 10.98.0.1/24 in a and 10.98.0.2/24 in b. Both are deleted
// when the test ends.
type vethPair struct {
	t    *testing.T
	ip   string
	nft  string
	ns   [2]string
	addr [2]string
}

func newVethPair(t *testing.T) *vethPair {
	t.Helper()
	p := &vethPair{t: t, ip: testenv.RequireTool(t, "ip", "iproute2"), nft: testenv.RequireTool(t, "nft", "nftables")}
	for i, side := range []string{"a", "b"} {
		p.ns[i] = fmt.Sprintf("rpdrt-%d-%s", os.Getpid(), side)
		p.addr[i] = fmt.Sprintf("10.98.0.%d", i+1)
		p.run(p.ip, "netns", "add", p.ns[i])
		ns := p.ns[i]
		t.Cleanup(func() {
			if out, err := exec.Command(p.ip, "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	p.run(p.ip, "-n", p.ns[0], "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", p.ns[1])
	for i := range p.ns {
		p.run(p.ip, "-n", p.ns[i], "addr", "add", p.addr[i]+"/24", "dev", "veth0")
		p.run(p.ip, "-n", p.ns[i], "link", "set", "veth0", "up")
		p.run(p.ip, "-n", p.ns[i], "link", "set", "lo", "up")
	}
	return p
}

func (p *vethPair) run(name string, args ...string) {
	p.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		p.t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// exec is the command prefix that runs a program in side i's namespace.
func (p *vethPair) exec(i int) []string { return []string{p.ip, "netns", "exec", p.ns[i]} }

// partition drops everything between the two namespaces, silently (as a
// broken switch would): an nftables table in a's namespace drops b's
// packets both ways.
func (p *vethPair) partition() {
	p.t.Helper()
	rules := fmt.Sprintf(`table inet rpdrt {
	chain in { type filter hook input priority 0; ip saddr %s drop; }
	chain out { type filter hook output priority 0; ip daddr %s drop; }
}
`, p.addr[1], p.addr[1])
	cmd := exec.Command(p.ip, "netns", "exec", p.ns[0], p.nft, "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("nft -f (partition): %v: %s", err, out)
	}
}

func (p *vethPair) heal() {
	p.t.Helper()
	p.run(p.ip, "netns", "exec", p.ns[0], p.nft, "delete", "table", "inet", "rpdrt")
}

// TestPartitionHealResyncsOnlyDirtyData runs the two nodes in their own
// network namespaces, partitions them with an nftables drop rule, writes
// scattered blocks on the primary meanwhile and heals. The resync sends
// only the dirty blocks (traffic counters: resync bytes ≤ dirty bytes plus
// framing) and the exports end identical, as online verify confirms.
func TestPartitionHealResyncsOnlyDirtyData(t *testing.T) {
	testenv.RequireRoot(t)
	net := newVethPair(t)
	nodes := newCluster(t, clusterSpec{Nodes: 2, Volume: "r0", Size: "256MiB", Protocol: "C", UnixNBD: true,
		Addrs: []string{net.addr[0] + ":7789", net.addr[1] + ":7789"}})
	a, b := nodes[0], nodes[1]
	a.wrap, b.wrap = net.exec(0), net.exec(1)
	upPair(a, b, "r0")

	net.partition()
	a.waitPeer("r0", "the partition noticed (ping timeout)", func(p control.Peer) bool { return p.Connection != "Connected" })
	b.waitPeer("r0", "the partition noticed (ping timeout)", func(p control.Peer) bool { return p.Connection != "Connected" })
	before := a.peer("r0")

	// N distinct blocks scattered over the volume, one 4 KiB write each.
	const n = 200
	rng := testenv.Rand(t)
	size := a.volume("r0").Size
	seen := map[int64]bool{}
	var blocks []int64
	for len(blocks) < n {
		blk := rng.Int64N(size / blockSize)
		if !seen[blk] {
			seen[blk] = true
			blocks = append(blocks, blk)
		}
	}
	a.writeBlocks("r0", 'p', blocks...)
	dirty := int64(n * blockSize)
	if p := a.peer("r0"); p.OutOfSyncBytes != dirty {
		t.Fatalf("a marks %d bytes out of sync for b after %d scattered 4 KiB writes, want %d", p.OutOfSyncBytes, n, dirty)
	}

	start := time.Now()
	net.heal()
	a.waitSync("r0")
	b.waitSync("r0")
	after := a.peer("r0")
	sent := after.SentBytes["resync"] - before.SentBytes["resync"]
	// One ResyncData message per run of consecutive dirty blocks: at most
	// one per block here.
	overhead := int64(n * (wire.HeaderSize + wire.ResyncFixed))
	t.Logf("healed and resynced in %v: %d resync bytes sent for %d dirty bytes (framing allowance %d)", time.Since(start).Round(time.Millisecond), sent, dirty, overhead)
	if sent < dirty || sent > dirty+overhead {
		t.Fatalf("resync sent %d bytes for %d dirty bytes; want between %d and %d", sent, dirty, dirty, dirty+overhead)
	}
	if got := after.ReceivedBytes["resync"] - before.ReceivedBytes["resync"]; got != 0 {
		t.Errorf("the primary received %d resync bytes: it was a sync target", got)
	}
	for _, blk := range blocks[:10] {
		if got := b.tagOf("r0", blk); got != 'p' {
			t.Errorf("block %d on b holds %q after the heal, want 'p'", blk, got)
		}
	}
	sameData(t, "r0", a, b)
	// Online verify agrees: every block compared by digest, none differs.
	var res control.VerifyResult
	jsonUnmarshal(t, a.mustRepctl("--json", "verify", "r0"), &res)
	if res.Differences != 0 || res.CheckedBytes != size {
		t.Fatalf("repctl verify after the heal: %d of %d bytes checked, %d blocks differ; want all checked, none differing", res.CheckedBytes, size, res.Differences)
	}
}
