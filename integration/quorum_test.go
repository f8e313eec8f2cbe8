package integration

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/nbd"
	"github.com/replicad/replicad/nbd/wire"
)

// Quorum (docs/replication.md, "Quorum") with three nodes, each in its own
// network namespace, partitioned by nftables drop rules.

// isolate silently drops everything between node and the other nodes (as
// a broken switch port would): an nftables table in node's namespace drops
// their packets both ways.
func (n *testNet) isolate(nft, node string, others ...string) {
	n.t.Helper()
	var addrs []string
	for _, o := range others {
		addrs = append(addrs, n.Addr(o))
	}
	set := "{ " + strings.Join(addrs, ", ") + " }"
	rules := fmt.Sprintf(`table inet rpdquorum {
	chain in { type filter hook input priority 0; ip saddr %s drop; }
	chain out { type filter hook output priority 0; ip daddr %s drop; }
}
`, set, set)
	cmd := exec.Command(n.ip, "netns", "exec", n.NS(node), nft, "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("nft -f (isolate %s): %v: %s", node, err, out)
	}
}

// rejoin removes isolate's rules.
func (n *testNet) rejoin(nft, node string) {
	n.t.Helper()
	n.run("netns", "exec", n.NS(node), nft, "delete", "table", "inet", "rpdquorum")
}

// TestQuorumPartition runs three nodes with quorum majority, cuts the
// primary off from both secondaries and heals, once per on-no-quorum
// policy:
//
//   - the cut-off primary loses quorum (repctl status --json: quorum
//     "lost"); a write on it does not complete while cut off (suspend-io)
//     or fails with EIO (io-error);
//   - the majority keeps quorum: a secondary is promoted without --force
//     and takes writes, which the third node gets;
//   - on healing, the old primary steps down by itself ("lost quorum"),
//     its suspended write fails rather than succeeds, it resyncs from the
//     new primary, and all three converge to the new primary's data;
//   - a secondary cut off in a minority is refused promotion without
//     --force, naming quorum.
func TestQuorumPartition(t *testing.T) {
	testenv.RequireRoot(t)
	for _, mode := range []string{"suspend-io", "io-error"} {
		t.Run(mode, func(t *testing.T) { runQuorumPartition(t, mode) })
	}
}

// TestQuorumPromotionKeepsQuorum: three nodes on loopback, quorum
// majority, on-no-quorum io-error. The primary dies (SIGKILL); the two
// survivors keep quorum (2 of 3), and one is promoted (the failover quorum
// is for). Its first write, right after `repctl primary` returned, must
// succeed, and it must not lose quorum on the way: promotion gives it no
// fewer peers.
func TestQuorumPromotionKeepsQuorum(t *testing.T) {
	nodes := newCluster(t, clusterSpec{Nodes: 3, Volume: "r0", Size: "16MiB", Protocol: "C",
		Extra: "      quorum: majority\n      on-no-quorum: io-error\n"})
	a, b, c := nodes[0], nodes[1], nodes[2]
	bringUpMesh(t, "r0", a, b, c)
	a.stop(syscall.SIGKILL)
	b.waitVolume("r0", "n0 gone, quorum kept with n2", func(v control.Volume) bool {
		return v.Quorum == "yes" && v.Reachable == 2 && b.peerNamed("r0", "n0").Connection != "Connected"
	})
	events := b.events()
	if out, err := b.repctl("primary", "r0"); err != nil {
		t.Fatalf("repctl primary on n1 (2 of 3 nodes reached): %v\n%s", err, out)
	}
	cl := b.dial("r0")
	werr := cl.WriteAt(context.Background(), block('p', 1), blockSize, false)
	c.waitPeerOf("r0", "n1", "the new primary, after the handshake", func(p control.Peer) bool {
		return p.Connection == "Connected" && p.Replication == "Established" && p.Role == "Primary" && p.InItsSyncSet
	})
	if werr != nil {
		t.Errorf("the first write on n1 right after its promotion with 2 of 3 nodes: %v; want it to succeed", werr)
	}
	for _, e := range events.all() {
		if e.What == "quorum" && e.New == "no" {
			t.Errorf("n1 lost quorum during its promotion: event %+v", e)
		}
	}
}

// runQuorumPartition is TestQuorumPartition's scenario under an
// on-no-quorum policy.
func runQuorumPartition(t *testing.T, mode string) {
	ip := testenv.RequireTool(t, "ip", "iproute2")
	nft := testenv.RequireTool(t, "nft", "nftables")
	names := []string{"n0", "n1", "n2"}
	net := newTestNet(t, ip, names...)
	var addrs []string
	for _, name := range names {
		addrs = append(addrs, net.Addr(name)+":7789")
	}
	nodes := newCluster(t, clusterSpec{Nodes: 3, Volume: "r0", Size: "64MiB", Protocol: "C", UnixNBD: true, Addrs: addrs,
		Extra: "      quorum: majority\n      on-no-quorum: " + mode + "\n"})
	for i, n := range nodes {
		n.wrap = net.Exec(net.NS(names[i]))
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	// The client whose write the cut-off primary holds. Closed after the
	// nodes are killed (cleanups run last-registered first): Close waits
	// for the reply to every request.
	var held *nbd.Client
	t.Cleanup(func() {
		if held != nil {
			held.Close()
		}
	})
	t.Cleanup(func() { dumpLogsOnFailure(t, nodes...) })
	bringUpMesh(t, "r0", a, b, c)
	for _, n := range nodes {
		if v := n.statusJSON().Volumes[0]; v.Quorum != "yes" || v.Reachable != 3 || v.Nodes != 3 {
			t.Fatalf("%s before the partition: quorum %q, %d of %d nodes reached; want yes, 3 of 3", n.name(), v.Quorum, v.Reachable, v.Nodes)
		}
	}
	a.writeBlocks("r0", 'a', 10, 11, 12, 20, 21)
	if p := b.peerNamed("r0", "n0"); !p.InItsSyncSet {
		t.Fatalf("n1 is not in the primary's in-sync set before the partition: %+v", p)
	}
	held = dialUnix(t, a, "r0")

	// The primary is cut off from both secondaries.
	net.isolate(nft, "n0", "n1", "n2")
	a.waitVolume("r0", "quorum lost (ping timeout)", func(v control.Volume) bool { return v.Quorum == "lost" })
	for _, n := range []*node{b, c} {
		n.waitPeerOf("r0", "n0", "the cut-off primary gone", func(p control.Peer) bool { return p.Connection != "Connected" })
	}
	v := a.statusJSON().Volumes[0]
	if v.Role != "Primary" || v.Quorum != "lost" || v.Reachable != 1 || v.Suspended != (mode == "suspend-io") {
		t.Errorf("the cut-off primary's status: role %s, quorum %q, %d nodes reached, suspended %v; want Primary, lost, 1, %v", v.Role, v.Quorum, v.Reachable, v.Suspended, mode == "suspend-io")
	}
	for _, n := range []*node{b, c} {
		if v := n.statusJSON().Volumes[0]; v.Quorum != "yes" || v.Reachable != 2 {
			t.Errorf("%s on the majority side: quorum %q, %d nodes reached; want yes, 2", n.name(), v.Quorum, v.Reachable)
		}
	}

	// (a) A write on the cut-off primary: block 30, which nobody else
	// writes, so that whether it landed shows at the end.
	wrote := make(chan error, 1)
	go func() { wrote <- held.WriteAt(context.Background(), block('z', 30), 30*blockSize, false) }()
	switch mode {
	case "suspend-io":
		// It must not complete while the node is cut off; 3 s is how long
		// this test looks, not a performance bound.
		select {
		case err := <-wrote:
			t.Fatalf("a write on the cut-off primary completed (err %v) under on-no-quorum suspend-io; it must wait for quorum", err)
		case <-time.After(3 * time.Second):
		}
	case "io-error":
		select {
		case err := <-wrote:
			var re *nbd.RemoteError
			if !errors.As(err, &re) || re.Errno != wire.EIO {
				t.Fatalf("a write on the cut-off primary under on-no-quorum io-error returned %v; want an EIO error reply", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("a write on the cut-off primary under on-no-quorum io-error did not complete within 30s; it must fail at once")
		}
	}

	// (b) The majority promotes one of its own without --force and
	// writes; the third node follows it.
	if out, err := b.repctl("primary", "r0"); err != nil {
		t.Fatalf("repctl primary on n1 (2 of 3 nodes reached): %v\n%s", err, out)
	}
	// Promotion re-handshakes with n2 (writes wait meanwhile,
	// TestQuorumPromotionKeepsQuorum); the checks below want it done.
	c.waitPeerOf("r0", "n1", "the new primary, after the handshake", func(p control.Peer) bool {
		return p.Connection == "Connected" && p.Replication == "Established" && p.Role == "Primary" && p.InItsSyncSet
	})
	b.waitVolume("r0", "quorum with n2", func(v control.Volume) bool { return v.Quorum == "yes" && v.Reachable == 2 })
	b.writeBlocks("r0", 'b', 10, 40, 41)
	for _, blk := range []int64{10, 40, 41} {
		if got := c.tagOf("r0", blk); got != 'b' {
			t.Errorf("block %d on n2 holds %q after the new primary wrote it; want 'b'", blk, got)
		}
	}

	// (c) Heal: the old primary meets the new one, steps down by itself
	// and resyncs from it.
	events := a.events()
	net.rejoin(nft, "n0")
	e := events.wait("n0 steps down for lost quorum", func(e control.Event) bool {
		return e.What == "role" && e.Old == "Primary" && e.New == "Secondary"
	})
	if !strings.Contains(e.Reason, "lost quorum") {
		t.Errorf("n0's step-down event gives the reason %q; want it to mention \"lost quorum\"", e.Reason)
	}
	if mode == "suspend-io" {
		select {
		case err := <-wrote:
			if err == nil {
				t.Errorf("the write held on the cut-off primary succeeded after it stepped down; it must fail (the majority's primary never got it)")
			}
			t.Logf("the held write completed after the step-down with: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatalf("the write held on the cut-off primary still had no reply 30s after the node stepped down")
		}
	}
	// The new primary takes the old one, now secondary, as its sync
	// target, and the old one meets the third node again: the mesh
	// converges unless a node gave up on a peer (StandAlone).
	if stuck := settle(t, "r0", nodes...); len(stuck) > 0 {
		t.Fatalf("after the heal, nodes gave up on peers (StandAlone), so the mesh cannot converge without an operator: %s", strings.Join(stuck, "; "))
	}
	waitMeshInSync(t, "r0", a, b, c)
	if v := a.volume("r0"); v.Role != "Secondary" || v.Quorum != "yes" {
		t.Errorf("the old primary after the heal: role %s, quorum %q; want Secondary, yes", v.Role, v.Quorum)
	}
	want := map[int64]byte{10: 'b', 11: 'a', 12: 'a', 20: 'a', 21: 'a', 30: 0, 40: 'b', 41: 'b'}
	for _, n := range nodes {
		for blk, tag := range want {
			if got := n.tagOf("r0", blk); got != tag {
				t.Errorf("%s after the heal: block %d holds %q, want %q", n.name(), blk, got, tag)
			}
		}
	}
	sameData(t, "r0", a, b, c)

	// A secondary alone in a minority may not promote itself.
	net.isolate(nft, "n0", "n1", "n2")
	a.waitVolume("r0", "quorum lost (ping timeout)", func(v control.Volume) bool { return v.Quorum == "lost" })
	out, err := a.repctl("primary", "r0")
	if err == nil || !strings.Contains(out, "quorum") {
		t.Errorf("repctl primary on a secondary cut off from both peers: err %v, output %q; want a refusal naming quorum", err, out)
	}
	if v := a.volume("r0"); v.Role != "Secondary" {
		t.Errorf("the cut-off secondary is %s after the refused promotion", v.Role)
	}
	b.writeBlocks("r0", 'c', 50)
	net.rejoin(nft, "n0")
	waitMeshInSync(t, "r0", a, b, c)
	if got := a.tagOf("r0", 50); got != 'c' {
		t.Errorf("block 50 on n0 after rejoining holds %q, want 'c'", got)
	}
}

// dialUnix opens an NBD connection to the node's unix-socket export of
// volume; the caller closes it.
func dialUnix(t *testing.T, n *node, volume string) *nbd.Client {
	t.Helper()
	u, err := url.Parse(n.unixURI(volume))
	if err != nil {
		t.Fatal(err)
	}
	c, err := nbd.Dial(context.Background(), "unix", u.Query().Get("socket"), volume, nil)
	if err != nil {
		t.Fatalf("nbd connect to %s: %v", u, err)
	}
	return c
}

// dumpLogsOnFailure logs the nodes' output when the test failed and
// RPD_DEBUG is set. Registered before the nodes start, it runs after they
// were killed (cleanups run last-registered first), when their output is
// complete.
func dumpLogsOnFailure(t *testing.T, nodes ...*node) {
	if !t.Failed() || os.Getenv("RPD_DEBUG") == "" {
		return
	}
	for _, n := range nodes {
		if n.log != nil {
			t.Logf("log of %s:\n%s", n.dir, n.log)
		}
	}
}

// settle waits until every node is in sync with every peer, or some node
// holds a peer StandAlone (which it will not leave by itself); it returns
// those, as "NODE: PEER StandAlone (WHY)".
func settle(t *testing.T, volume string, nodes ...*node) []string {
	t.Helper()
	var stuck []string
	waitUntil(t, "every node in sync, or a peer StandAlone", 60*time.Second, func() (bool, string) {
		stuck = nil
		done := true
		var state []string
		for _, n := range nodes {
			v := n.volume(volume)
			done = done && inSync(v)
			state = append(state, describeVolume(v))
			for _, p := range v.Peers {
				if p.Connection == "StandAlone" {
					stuck = append(stuck, fmt.Sprintf("%s: %s StandAlone (%s)", n.name(), p.Node, p.LastError))
				}
			}
		}
		return done || len(stuck) > 0, strings.Join(state, "; ")
	})
	return stuck
}
