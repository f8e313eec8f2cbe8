package replication

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/meta"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type testNode struct {
	id  uint32
	mem *disk.Mem
	vol *Volume
	tr  *Transport
	rep *Replicator
	l   net.Listener
}

// twoNodes builds two replicating nodes over loopback TCP with fresh
// metadata (both Inconsistent, just created).
func twoNodes(t *testing.T, proto byte, secrets ...string) [2]*testNode {
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
		n.mem = disk.NewMem(64 << 20)
		g := meta.DefaultGeometry()
		g.ALExtents = 67
		if _, err := CreateMetadata(Devices{Data: n.mem}, CreateOptions{NodeID: n.id, Geometry: g}); err != nil {
			t.Fatal(err)
		}
		vol, _, err := Attach("r0", Devices{Data: n.mem}, AttachOptions{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		n.vol = vol
		n.tr, err = NewTransport(TransportConfig{NodeID: n.id, Secret: []byte(secrets[i]), Peers: map[uint32]string{other.id: other.l.Addr().String()}, Logger: quiet, DialTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cfg := DefaultReplicatorConfig()
		cfg.NodeID, cfg.Peers, cfg.Protocol, cfg.Logger = n.id, []uint32{other.id}, proto, quiet
		cfg.ConnectInterval, cfg.PingInterval, cfg.PingTimeout = 50*time.Millisecond, 500*time.Millisecond, time.Second
		cfg.ResyncChunk = 256 << 10
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
