package integration

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/nbd"
)

// Three nodes in a full mesh (docs/replication.md, "Three or more nodes"):
// every node lists the other two as peers; one primary replicates to both.

// bringUpMesh starts the nodes, creates and brings up the volume on each,
// forces the first node primary and waits until all of them are in sync
// with each other.
func bringUpMesh(t *testing.T, volume string, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		n.start()
	}
	for _, n := range nodes {
		n.create(volume)
	}
	nodes[0].mustRepctl("primary", "--force", volume)
	waitMeshInSync(t, volume, nodes...)
}

// peerNamed returns the node's peer called name (n0, n1, …) for volume.
func (n *node) peerNamed(volume, name string) control.Peer {
	n.t.Helper()
	v := n.volume(volume)
	for _, p := range v.Peers {
		if p.Node == name {
			return p
		}
	}
	n.t.Fatalf("volume %s has no peer %s: %+v", volume, name, v.Peers)
	return control.Peer{}
}

// waitVolume waits until the node's volume satisfies cond.
func (n *node) waitVolume(volume, what string, cond func(control.Volume) bool) control.Volume {
	n.t.Helper()
	return waitValue(n, what, func() control.Volume { return n.volume(volume) }, cond)
}

// inSync: the volume is UpToDate and every peer is Connected, Established,
// UpToDate, with nothing marked out of sync for it.
func inSync(v control.Volume) bool {
	if v.Disk != "UpToDate" || len(v.Peers) == 0 {
		return false
	}
	for _, p := range v.Peers {
		if p.Connection != "Connected" || p.Replication != "Established" || p.Disk != "UpToDate" || p.OutOfSyncBytes != 0 {
			return false
		}
	}
	return true
}

// waitMeshInSync waits until every node is in sync with every peer (as
// each node sees it, out_of_sync_bytes 0 included).
func waitMeshInSync(t *testing.T, volume string, nodes ...*node) {
	t.Helper()
	waitUntil(t, "every node in sync with every peer", 60*time.Second, func() (bool, string) {
		var state []string
		ok := true
		for _, n := range nodes {
			v := n.volume(volume)
			ok = ok && inSync(v)
			state = append(state, describeVolume(v))
		}
		return ok, strings.Join(state, "; ")
	})
}

// describeVolume is a one-line summary of a volume's replication state.
func describeVolume(v control.Volume) string {
	s := fmt.Sprintf("%s %s/%s quorum=%q suspended=%v:", v.Name, v.Role, v.Disk, v.Quorum, v.Suspended)
	for _, p := range v.Peers {
		s += fmt.Sprintf(" [%s %s %s %s/%s oos=%d sync-set=%v err=%q]", p.Node, p.Connection, p.Replication, p.Role, p.Disk, p.OutOfSyncBytes, p.InItsSyncSet, p.LastError)
	}
	return s
}

// TestMeshThreeNodesReplicate: protocol C with three nodes in a full mesh.
// Blocks written on the primary over NBD are on both secondaries (the
// three exports read the same), and each secondary's `repctl status
// --json` shows the primary counting it in its in-sync set (which makes it
// a safe failover target).
func TestMeshThreeNodesReplicate(t *testing.T) {
	nodes := newCluster(t, clusterSpec{Nodes: 3, Volume: "r0", Size: "64MiB", Protocol: "C"})
	a, b, c := nodes[0], nodes[1], nodes[2]
	bringUpMesh(t, "r0", a, b, c)

	blocks := []int64{0, 1, 2, 7, 1000, 4095, 8191, 16000}
	a.writeBlocks("r0", 'm', blocks...)
	// Protocol C: the writes completed once both secondaries wrote them,
	// so they read them now, without waiting.
	for _, n := range []*node{b, c} {
		for _, blk := range blocks {
			if got := n.tagOf("r0", blk); got != 'm' {
				t.Errorf("block %d on %s holds %q right after the primary's write completed; want 'm' (protocol C)", blk, n.name(), got)
			}
		}
	}
	sameData(t, "r0", a, b, c)

	for _, n := range []*node{b, c} {
		st := n.statusJSON()
		if len(st.Volumes) != 1 || len(st.Volumes[0].Peers) != 2 {
			t.Fatalf("%s: repctl status --json: want one volume with two peers: %+v", n.name(), st)
		}
		v := st.Volumes[0]
		if v.Role != "Secondary" || v.Disk != "UpToDate" {
			t.Errorf("%s: volume %s/%s, want Secondary/UpToDate", n.name(), v.Role, v.Disk)
		}
		for _, p := range v.Peers {
			primary := p.Node == "n0"
			if p.Connection != "Connected" || p.Replication != "Established" || p.Disk != "UpToDate" || p.OutOfSyncBytes != 0 {
				t.Errorf("%s: peer %s not in sync: %+v", n.name(), p.Node, p)
			}
			if primary && (p.Role != "Primary" || !p.InItsSyncSet) {
				t.Errorf("%s: the primary %s as a peer: role %s, in_its_sync_set %v; want Primary, true", n.name(), p.Node, p.Role, p.InItsSyncSet)
			}
			if !primary && (p.Role != "Secondary" || p.InItsSyncSet) {
				t.Errorf("%s: the other secondary %s as a peer: role %s, in_its_sync_set %v; want Secondary, false", n.name(), p.Node, p.Role, p.InItsSyncSet)
			}
		}
	}
	for _, p := range a.volume("r0").Peers {
		if p.Role != "Secondary" || p.Disk != "UpToDate" || p.OutOfSyncBytes != 0 {
			t.Errorf("the primary's peer %s: %+v", p.Node, p)
		}
	}
}

// ackLog records, per block, the last write a client saw acknowledged and
// the writes issued after it (in flight when the primary died).
type ackLog struct {
	mu       sync.Mutex
	acked    map[int64]uint64
	inflight map[int64][]uint64
}

// writeUntilDead has `clients` NBD connections to addr write stamped
// blocks into the first `blocks` blocks (client i owns blocks i, i+clients,
// …) until a write fails or stop is closed.
func writeUntilDead(t *testing.T, network, addr string, clients, blocks int, stop <-chan struct{}) (*ackLog, *sync.WaitGroup) {
	t.Helper()
	l := &ackLog{acked: map[int64]uint64{}, inflight: map[int64][]uint64{}}
	var wg sync.WaitGroup
	var idMu sync.Mutex
	var nextID uint64
	for c := 0; c < clients; c++ {
		cl, err := nbd.Dial(context.Background(), network, addr, "r0", nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				blk := int64(c) + int64(clients)*int64((i*7919)%(blocks/clients))
				idMu.Lock()
				nextID++
				id := nextID
				idMu.Unlock()
				l.mu.Lock()
				l.inflight[blk] = append(l.inflight[blk], id)
				l.mu.Unlock()
				if err := cl.WriteAt(context.Background(), stampedBlock(id), blk*blockSize, false); err != nil {
					return
				}
				l.mu.Lock()
				l.acked[blk] = id
				l.inflight[blk] = nil
				l.mu.Unlock()
			}
		}(c)
	}
	return l, &wg
}

// lostWrites reads every block with an acknowledged write on n and returns
// how many hold neither that write nor one issued after it.
func (l *ackLog) lostWrites(t *testing.T, n *node) (checked, lost int) {
	t.Helper()
	c := n.dial("r0")
	defer c.Close()
	buf := make([]byte, blockSize)
	l.mu.Lock()
	defer l.mu.Unlock()
	for blk, id := range l.acked {
		if err := c.ReadAt(context.Background(), buf, blk*blockSize); err != nil {
			t.Fatalf("read block %d on %s: %v", blk, n.name(), err)
		}
		got := binary.LittleEndian.Uint64(buf)
		ok := got == id
		for _, later := range l.inflight[blk] {
			ok = ok || got == later
		}
		if !ok {
			lost++
			if lost <= 5 {
				t.Errorf("%s: block %d: acknowledged write #%d is lost (the block holds #%d)", n.name(), blk, id, got)
			}
		}
	}
	return len(l.acked), lost
}

// TestMeshFailoverLosesNoAcknowledgedWrite: three nodes, protocol C. The
// primary is killed (SIGKILL) under write load; a secondary that the
// primary counted in its in-sync set is promoted and holds every
// acknowledged write. The other secondary follows the new primary; the
// killed node restarts, comes back as secondary, and all three converge to
// identical data with nothing out of sync.
func TestMeshFailoverLosesNoAcknowledgedWrite(t *testing.T) {
	nodes := newCluster(t, clusterSpec{Nodes: 3, Volume: "r0", Size: "64MiB", Protocol: "C"})
	a, b, c := nodes[0], nodes[1], nodes[2]
	bringUpMesh(t, "r0", a, b, c)

	const blocks = 4096 // the first 16 MiB
	stop := make(chan struct{})
	log, wg := writeUntilDead(t, "tcp", hostport(t, a.uri("r0"), "r0"), 8, blocks, stop)
	waitUntil(t, "writes acknowledged under load", 30*time.Second, func() (bool, string) {
		log.mu.Lock()
		defer log.mu.Unlock()
		return len(log.acked) >= 2000, fmt.Sprintf("%d blocks acknowledged", len(log.acked))
	})
	// The failover target: a secondary that the (live, writing) primary
	// counts in its in-sync set.
	// Either may be it: the seed picks when both are.
	var candidates []*node
	for _, n := range []*node{b, c} {
		if n.peerNamed("r0", "n0").InItsSyncSet {
			candidates = append(candidates, n)
		}
	}
	if len(candidates) == 0 {
		t.Fatalf("no secondary is in the primary's in-sync set under load: %s; %s", describeVolume(b.volume("r0")), describeVolume(c.volume("r0")))
	}
	target, other := candidates[testenv.Rand(t).IntN(len(candidates))], b
	if target == b {
		other = c
	}
	a.stop(syscall.SIGKILL)
	close(stop)
	wg.Wait()

	// The survivors notice; the target is promoted without --force.
	for _, n := range []*node{target, other} {
		n.waitPeerOf("r0", "n0", "the killed primary gone", func(p control.Peer) bool { return p.Connection != "Connected" })
	}
	if out, err := target.repctl("primary", "r0"); err != nil {
		t.Fatalf("promoting %s (in the dead primary's in-sync set): %v\n%s", target.name(), err, out)
	}
	checked, lost := log.lostWrites(t, target)
	t.Logf("%d blocks with acknowledged writes checked on the new primary %s; %d lost", checked, target.name(), lost)
	if lost > 0 {
		t.Fatalf("%d acknowledged writes lost at failover", lost)
	}
	// The other secondary follows the new primary and gets whatever of the
	// dead primary's last writes it held differently.
	other.waitPeerOf("r0", target.name(), "the new primary connected and in sync", func(p control.Peer) bool {
		return p.Connection == "Connected" && p.Replication == "Established" && p.Role == "Primary" && p.InItsSyncSet && p.OutOfSyncBytes == 0
	})
	target.writeBlocks("r0", 'n', 5000, 5001, 9000)

	t.Logf("%s received %d resync bytes from the new primary %s (the dead primary's last writes it held differently)",
		other.name(), other.peerNamed("r0", target.name()).ReceivedBytes["resync"], target.name())

	// The killed node returns (the volume comes up by itself) as secondary
	// and resyncs from the new primary.
	a.start()
	waitMeshInSync(t, "r0", a, b, c)
	if v := a.volume("r0"); v.Role != "Secondary" {
		t.Fatalf("the restarted old primary is %s, want Secondary", v.Role)
	}
	for _, blk := range []int64{5000, 5001, 9000} {
		if got := a.tagOf("r0", blk); got != 'n' {
			t.Errorf("block %d on the restarted %s holds %q, want the new primary's 'n'", blk, a.name(), got)
		}
	}
	if _, lost := log.lostWrites(t, a); lost > 0 {
		t.Errorf("the restarted old primary lacks %d acknowledged writes after the resync", lost)
	}
	sameData(t, "r0", a, b, c)
}

// waitPeerOf waits until the node's peer called peer satisfies cond.
func (n *node) waitPeerOf(volume, peer, what string, cond func(control.Peer) bool) control.Peer {
	n.t.Helper()
	var p control.Peer
	waitUntil(n.t, n.name()+": peer "+peer+": "+what, 30*time.Second, func() (bool, string) {
		p = n.peerNamed(volume, peer)
		return cond(p), describeVolume(n.volume(volume))
	})
	return p
}
