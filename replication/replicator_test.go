package replication

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/meta"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type testNode struct {
	id  uint32
	mem *disk.Mem   // dev, when the test did not give one
	dev disk.Device // the volume's device (internal metadata)
	vol *Volume
	tr  *Transport
	rep *Replicator
	l   net.Listener
}

// twoNodes builds two replicating nodes over loopback TCP with fresh
// metadata (both Inconsistent, just created).
func twoNodes(t *testing.T, proto byte, secrets ...string) [2]*testNode {
	t.Helper()
	return twoNodesWith(t, proto, nil, secrets...)
}

func twoNodesWith(t *testing.T, proto byte, tune func(*ReplicatorConfig), secrets ...string) [2]*testNode {
	t.Helper()
	return twoNodesFull(t, proto, tune, nil, secrets...)
}

func twoNodesTransport(t *testing.T, tuneTr func(uint32, *TransportConfig)) [2]*testNode {
	t.Helper()
	return twoNodesFull(t, 'C', nil, tuneTr)
}

func twoNodesFull(t *testing.T, proto byte, tune func(*ReplicatorConfig), tuneTr func(uint32, *TransportConfig), secrets ...string) [2]*testNode {
	t.Helper()
	return twoNodesOn(t, [2]disk.Device{}, proto, tune, tuneTr, secrets...)
}

// twoNodesOn is twoNodesFull on the given 64 MiB devices (a fresh
// in-memory one where nil).
func twoNodesOn(t *testing.T, devs [2]disk.Device, proto byte, tune func(*ReplicatorConfig), tuneTr func(uint32, *TransportConfig), secrets ...string) [2]*testNode {
	t.Helper()
	if len(secrets) == 0 {
		secrets = []string{"a shared secret of some length", "a shared secret of some length"}
	}
	var nodes [2]*testNode
	for i := range nodes {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = &testNode{id: uint32(i), l: l}
	}
	for i, n := range nodes {
		other := nodes[1-i]
		n.dev = devs[i]
		if n.dev == nil {
			n.mem = disk.NewMem(64 << 20)
			n.dev = n.mem
		}
		g := meta.DefaultGeometry()
		g.ALExtents = 67
		if _, err := CreateMetadata(Devices{Data: n.dev}, CreateOptions{NodeID: n.id, Geometry: g}); err != nil {
			t.Fatal(err)
		}
		vol, _, err := Attach("r0", Devices{Data: n.dev}, AttachOptions{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		n.vol = vol
		tcfg := TransportConfig{NodeID: n.id, Secret: []byte(secrets[i]), Peers: map[uint32]string{other.id: other.l.Addr().String()}, Logger: quiet, DialTimeout: 2 * time.Second}
		if tuneTr != nil {
			tuneTr(n.id, &tcfg)
		}
		n.tr, err = NewTransport(tcfg)
		if err != nil {
			t.Fatal(err)
		}
		cfg := DefaultReplicatorConfig()
		cfg.NodeID, cfg.Peers, cfg.Protocol, cfg.Logger = n.id, []uint32{other.id}, proto, quiet
		cfg.ConnectInterval, cfg.PingInterval, cfg.PingTimeout = 50*time.Millisecond, 500*time.Millisecond, time.Second
		cfg.ResyncChunk = 256 << 10
		if tune != nil {
			tune(&cfg)
		}
		n.rep, err = NewReplicator("r0", vol, n.tr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		go n.tr.Serve(n.l)
	}
	for _, n := range nodes {
		n.rep.Start()
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.rep.Close()
			n.tr.Close()
			n.vol.Close()
		}
	})
	return nodes
}

// waitFor polls cond (not a timing assertion: a deadline only to fail
// instead of hanging).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func peerState(n *testNode) engine.PeerStatus { return n.rep.Status().Peers[0] }

// promoteInSync waits for a and b to connect, forces a primary and waits
// for the initial sync.
func promoteInSync(t *testing.T, a, b *testNode) {
	t.Helper()
	waitFor(t, "connect", func() bool { return peerState(a).Repl == engine.Established })
	if err := a.rep.Promote(true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "initial sync", func() bool { return inSync(a) && inSync(b) })
}

func inSync(n *testNode) bool {
	p := peerState(n)
	return p.Conn == engine.Connected && p.Repl == engine.Established && p.Disk == engine.UpToDate && n.rep.Status().Disk == engine.UpToDate
}

func TestReplicationEndToEnd(t *testing.T) {
	for _, proto := range []byte{'A', 'B', 'C'} {
		t.Run(fmt.Sprintf("protocol %c", proto), func(t *testing.T) {
			nodes := twoNodes(t, proto)
			a, b := nodes[0], nodes[1]
			waitFor(t, "both just-created nodes to connect", func() bool { return peerState(a).Repl == engine.Established })
			if err := a.rep.Promote(false); err == nil {
				t.Fatal("promoting Inconsistent data without --force succeeded")
			}
			if err := a.rep.Promote(true); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the initial full sync", func() bool { return inSync(a) && inSync(b) })
			if err := b.rep.Promote(false); err == nil {
				t.Fatal("a second primary was allowed")
			}
			// Writes reach the peer.
			p := bytes.Repeat([]byte{0xab}, 64<<10)
			if err := a.rep.WriteAt(ctx, p, 1<<20, false); err != nil {
				t.Fatal(err)
			}
			if err := a.rep.WriteZeroes(ctx, 1<<20, 4096, true, false); err != nil {
				t.Fatal(err)
			}
			if err := a.rep.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			want := bytes.Clone(p)
			clear(want[:4096])
			got := make([]byte, len(p))
			waitFor(t, "the write to reach the peer", func() bool {
				b.vol.ReadAt(ctx, got, 1<<20)
				return bytes.Equal(got, want)
			})
			if err := b.rep.WriteAt(ctx, p, 0, false); err == nil {
				t.Fatal("a secondary accepted a write")
			}
			// Degraded writes are marked and resynced, and only they are sent.
			if err := b.rep.Disconnect(0); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the disconnect", func() bool { return peerState(a).Conn != engine.Connected })
			for i := int64(0); i < 8; i++ {
				if err := a.rep.WriteAt(ctx, bytes.Repeat([]byte{byte(i)}, 4096), 8<<20+i*(1<<20), false); err != nil {
					t.Fatal(err)
				}
			}
			if oos := peerState(a).OutOfSyncBytes; oos != 8*4096 {
				t.Fatalf("out of sync after 8 degraded 4 KiB writes: %d bytes", oos)
			}
			if st := peerState(b); st.Conn != engine.StandAlone {
				t.Fatalf("disconnected peer is %v, want StandAlone", st.Conn)
			}
			if err := b.rep.Connect(0, false); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the resync", func() bool { return inSync(a) && inSync(b) && peerState(a).OutOfSyncBytes == 0 })
			for i := int64(0); i < 8; i++ {
				blk := make([]byte, 4096)
				b.vol.ReadAt(ctx, blk, 8<<20+i*(1<<20))
				if !bytes.Equal(blk, bytes.Repeat([]byte{byte(i)}, 4096)) {
					t.Fatalf("block %d not resynced", i)
				}
			}
		})
	}
}

func TestWrongSecretIsRefused(t *testing.T) {
	nodes := twoNodes(t, 'C', "the right secret, long enough", "a wrong secret, also long enough")
	waitFor(t, "a refused connection attempt", func() bool {
		return strings.Contains(nodes[0].rep.Status().LinkError[1], "authenticat")
	})
	time.Sleep(200 * time.Millisecond)
	for _, n := range nodes {
		if c := peerState(n).Conn; c == engine.Connected {
			t.Fatalf("node %d connected with a wrong secret", n.id)
		}
	}
}

// TestOnlineVerify: verify over real links finds blocks changed behind
// replication's back (exactly those), and the resync it triggers repairs
// them; with checksum resync the repair sends only those blocks as data.
func TestOnlineVerify(t *testing.T) {
	nodes := twoNodes(t, 'C')
	a, b := nodes[0], nodes[1]
	promoteInSync(t, a, b)
	for i := int64(0); i < 64; i++ {
		if err := a.rep.WriteAt(ctx, bytes.Repeat([]byte{byte(i + 1)}, 4096), i*(512<<10), false); err != nil {
			t.Fatal(err)
		}
	}
	a.rep.Flush(ctx)
	// Corrupt three blocks on the secondary's disk, bypassing replication.
	for _, off := range []int64{0, 5 * (512 << 10), 40 * (512 << 10)} {
		b.mem.WriteAt(bytes.Repeat([]byte{0xee}, 4096), off)
	}
	if err := a.rep.StartVerify(1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the verify to finish", func() bool { return peerState(a).LastVerify.Checked == a.vol.Size() })
	if d := peerState(a).LastVerify.Differences; d != 3 {
		t.Fatalf("verify found %d differing blocks, want 3", d)
	}
	waitFor(t, "the repair", func() bool { return inSync(a) && inSync(b) && peerState(a).OutOfSyncBytes == 0 })
	got, want := make([]byte, 4096), bytes.Repeat([]byte{6}, 4096)
	b.vol.ReadAt(ctx, got, 5*(512<<10))
	if !bytes.Equal(got, want) {
		t.Fatal("the corrupted block was not repaired")
	}
	// A second verify finds nothing.
	if err := a.rep.StartVerify(1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second verify", func() bool {
		v := peerState(a).LastVerify
		return peerState(a).Repl == engine.Established && v.Checked == a.vol.Size() && v.Differences == 0
	})
}

// TestFencingFreezesIO: under resource-and-stonith a primary that loses its
// peer freezes I/O until the fence-peer handler reports the peer fenced
// (exit 7); the handler gets DRBD's and replicad's environment. A failing
// handler leaves I/O frozen until an operator resumes it. A promotion with
// the peer unreachable fences it first, and is refused if that fails.
func TestFencingFreezesIO(t *testing.T) {
	dir := t.TempDir()
	code := filepath.Join(dir, "code")
	os.WriteFile(code, []byte("7"), 0o644)
	handler := fmt.Sprintf(`echo "$REPLICAD_PEER_NODE_ID $REPLICAD_PEER_NODE $REPLICAD_FENCING $REPLICAD_RESOURCE $DRBD_PEER_NODE_ID" >> %s/ran; sleep 0.2; exit $(cat %s)`, dir, code)
	nodes := twoNodesWith(t, 'C', func(c *ReplicatorConfig) {
		c.Fencing = engine.ResourceAndStonith
		c.FencePeerHandler = handler
		c.NodeNames = map[uint32]string{0: "alpha", 1: "beta"}
	})
	a, b := nodes[0], nodes[1]
	promoteInSync(t, a, b)

	// The peer goes away: fence-peer runs, I/O waits for it.
	b.rep.Disconnect(0)
	waitFor(t, "the primary to notice", func() bool { return peerState(a).Conn != engine.Connected })
	done := make(chan error, 1)
	go func() { done <- a.rep.WriteAt(ctx, make([]byte, 4096), 0, false) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ran, _ := os.ReadFile(filepath.Join(dir, "ran"))
	if string(ran) != "1 beta resource-and-stonith r0 1\n" {
		t.Fatalf("the write completed, but the handler ran as %q", ran)
	}

	// Reconnect, then lose the peer again with a failing handler.
	os.WriteFile(code, []byte("1"), 0o644)
	b.rep.Connect(0, false)
	waitFor(t, "resync", func() bool { return inSync(a) && inSync(b) })
	b.rep.Disconnect(0)
	waitFor(t, "the primary to notice", func() bool { return peerState(a).Conn != engine.Connected })
	go func() { done <- a.rep.WriteAt(ctx, make([]byte, 4096), 4096, false) }()
	waitFor(t, "the failed fencing", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "ran"))
		a.rep.mu.Lock()
		defer a.rep.mu.Unlock()
		return strings.Count(string(b), "\n") == 2 && !a.rep.eng.Status().Peers[0].Fencing && a.rep.eng.Suspended()
	})
	select {
	case err := <-done:
		t.Fatalf("a write completed while I/O was frozen by a failed fencing: %v", err)
	default:
	}
	a.rep.ResumeIO()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Promotion of the secondary while the primary is unreachable.
	a.rep.Demote()
	if err := b.rep.Promote(false); err == nil {
		t.Fatal("promoted although fence-peer failed")
	}
	os.WriteFile(code, []byte("7"), 0o644)
	if err := b.rep.Promote(false); err != nil {
		t.Fatalf("promotion after a successful fence-peer: %v", err)
	}
}

// TestDualPrimaryConflicts: two primaries write the same few blocks at
// the same moment from several goroutines each, unsynchronised (as a
// careless application would); once both are quiet the two disks hold the
// same data, and each block holds one whole write.
func TestDualPrimaryConflicts(t *testing.T) {
	cfg := DefaultReplicatorConfig()
	cfg.Protocol, cfg.AllowTwoPrimaries = 'A', true
	if _, err := NewReplicator("r0", nil, nil, cfg); err == nil || !strings.Contains(err.Error(), "protocol C") {
		t.Fatalf("allow-two-primaries with protocol A: %v, want refused", err)
	}
	nodes := twoNodesWith(t, 'C', func(c *ReplicatorConfig) { c.AllowTwoPrimaries = true })
	a, b := nodes[0], nodes[1]
	waitFor(t, "the connection", func() bool { return peerState(a).Repl == engine.Established })
	if err := a.rep.Promote(true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the initial full sync", func() bool { return inSync(a) && inSync(b) })
	if err := b.rep.Promote(false); err != nil {
		t.Fatal(err)
	}
	const blocks, writers = 4, 4
	ga, gb := make([]byte, blocks*4096), make([]byte, blocks*4096)
	for round := 0; round < 100; round++ {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for ni, n := range nodes {
			for g := 0; g < writers; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for i := 0; i < blocks; i++ {
						blk := int64((i + g) % blocks)
						p := bytes.Repeat([]byte{byte(ni<<7 | g<<5 | round%32)}, 4096)
						if err := n.rep.WriteAt(ctx, p, blk*4096, false); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
		}
		close(start)
		wg.Wait()
		waitFor(t, fmt.Sprintf("both nodes to agree after round %d", round), func() bool {
			a.vol.ReadAt(ctx, ga, 0)
			b.vol.ReadAt(ctx, gb, 0)
			return bytes.Equal(ga, gb)
		})
		for blk := 0; blk < blocks; blk++ {
			p := ga[blk*4096 : (blk+1)*4096]
			if !bytes.Equal(p, bytes.Repeat(p[:1], 4096)) {
				t.Fatalf("round %d: block %d holds a torn write", round, blk)
			}
		}
	}
	if !inSync(a) || !inSync(b) {
		t.Fatalf("not in sync after the conflicts: %+v / %+v", peerState(a), peerState(b))
	}
}
