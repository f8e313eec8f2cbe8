package replication

import (
	"bytes"
	"crypto/tls"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/testcert"
	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/engine"
)

// TestCompressedLink: with s2 or zstd, compressible data crosses the link
// in fewer bytes than written, and arrives intact.
func TestCompressedLink(t *testing.T) {
	for _, c := range []string{"s2", "zstd"} {
		t.Run(c, func(t *testing.T) {
			nodes := twoNodesWith(t, 'C', func(cfg *ReplicatorConfig) { cfg.Compression = c })
			a, b := nodes[0], nodes[1]
			waitFor(t, "connect", func() bool { return peerState(a).Repl == engine.Established })
			a.rep.Promote(true)
			waitFor(t, "sync", func() bool { return inSync(a) && inSync(b) })
			before := a.rep.Status().Traffic[1].Sent["write"]
			p := bytes.Repeat([]byte("compressible replicated data "), 64<<10/29+1)[:64<<10]
			for i := int64(0); i < 16; i++ {
				if err := a.rep.WriteAt(ctx, p, i*(64<<10), false); err != nil {
					t.Fatal(err)
				}
			}
			sent := a.rep.Status().Traffic[1].Sent["write"] - before
			if sent <= 0 || sent >= 16*64<<10/4 {
				t.Fatalf("%s: 1 MiB of repetitive data took %d bytes on the link", c, sent)
			}
			got := make([]byte, len(p))
			b.vol.ReadAt(ctx, got, 15*(64<<10))
			if !bytes.Equal(got, p) {
				t.Fatal("compressed write arrived different")
			}
		})
	}
}

// stuckDevice blocks writes while stuck is set.
type stuckDevice struct {
	disk.Device
	mu    sync.Mutex
	cond  *sync.Cond
	stuck bool
}

func (d *stuckDevice) WriteAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	for d.stuck {
		d.cond.Wait()
	}
	d.mu.Unlock()
	return d.Device.WriteAt(p, off)
}

func (d *stuckDevice) set(v bool) {
	d.mu.Lock()
	d.stuck = v
	d.mu.Unlock()
	d.cond.Broadcast()
}

// TestKoCountCutsOffAStuckPeer: a peer whose disk hangs keeps the link
// open, but a write it never acknowledges for ko-count × timeout gets it
// disconnected, and the primary's writes complete.
func TestKoCountCutsOffAStuckPeer(t *testing.T) {
	nodes := twoNodesWith(t, 'C', func(cfg *ReplicatorConfig) {
		cfg.PingInterval, cfg.PingTimeout = time.Minute, time.Minute // only ko-count may notice
		cfg.Timeout, cfg.KoCount = 100*time.Millisecond, 3
	})
	a, b := nodes[0], nodes[1]
	waitFor(t, "connect", func() bool { return peerState(a).Repl == engine.Established })
	a.rep.Promote(true)
	waitFor(t, "sync", func() bool { return inSync(a) && inSync(b) })
	// Make the secondary's disk hang from now on.
	sd := &stuckDevice{Device: b.vol.devs.Data}
	sd.cond = sync.NewCond(&sd.mu)
	b.vol.devs.Data = sd
	sd.set(true)
	defer sd.set(false)
	start := time.Now()
	if err := a.rep.WriteAt(ctx, make([]byte, 4096), 0, false); err != nil {
		t.Fatal(err)
	}
	if st := peerState(a); !strings.Contains(st.LastError, "peer stuck") {
		t.Fatalf("the write completed after %v but the peer was not cut off as stuck: %+v", time.Since(start), st)
	}
	if oos := peerState(a).OutOfSyncBytes; oos < 4096 {
		t.Fatalf("the unacknowledged write is not marked out of sync (%d bytes)", oos)
	}
}

// TestTLSLink: with mutual TLS the nodes replicate; a node whose
// certificate comes from another CA is refused, and both nodes' status say
// why: the dialer (node 0) from its own handshake, the acceptor by the
// address the refused connection came from.
func TestTLSLink(t *testing.T) {
	ca, other := testcert.NewCA(t, "replicad test CA"), testcert.NewCA(t, "another CA")
	pool := ca.Pool()
	names := map[uint32]string{0: "alpha", 1: "beta"}
	for _, foreign := range []int{-1, 0, 1} {
		nodes := twoNodesTransport(t, func(id uint32, tc *TransportConfig) {
			issuer := ca
			if int(id) == foreign {
				issuer = other
			}
			tc.PeerNames = names
			tc.TLS = &tls.Config{Certificates: []tls.Certificate{issuer.Issue(t, names[id])},
				RootCAs: pool, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
		})
		a, b := nodes[0], nodes[1]
		if foreign < 0 {
			waitFor(t, "a TLS connection", func() bool { return peerState(a).Repl == engine.Established })
			continue
		}
		waitFor(t, "a refused TLS connection", func() bool { return strings.Contains(a.rep.Status().LinkError[1], "tls") })
		waitFor(t, "the acceptor's note of the refusal", func() bool {
			why := b.rep.Status().LinkError[0]
			return strings.Contains(why, "TLS handshake failed") && strings.Contains(why, "127.0.0.1") && strings.Contains(why, "alpha")
		})
		if peerState(a).Conn == engine.Connected || peerState(b).Conn == engine.Connected {
			t.Fatalf("connected with node %d's certificate from another CA", foreign)
		}
	}
}

// TestDialersAt: a refused TLS connection is attributed to the peers that
// dial this node from its address, by IP or by a name that resolves to it,
// and never to a peer this node dials itself.
func TestDialersAt(t *testing.T) {
	tr, err := NewTransport(TransportConfig{NodeID: 5, Secret: []byte("a shared secret of some length"), Peers: map[uint32]string{
		1: "127.0.0.1:7789", 2: "localhost:7789", 3: "10.1.2.3:7789", 4: "[::1]:7789", 6: "127.0.0.1:7790",
	}})
	if err != nil {
		t.Fatal(err)
	}
	local, err := net.LookupIP("localhost")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ip   string
		want []uint32
	}{
		{"127.0.0.1", []uint32{1}},
		{"10.1.2.3", []uint32{3}},
		{"::1", []uint32{4}},
		{"192.0.2.1", nil},
	} {
		if slices.ContainsFunc(local, func(ip net.IP) bool { return ip.Equal(net.ParseIP(c.ip)) }) {
			c.want = append(c.want, 2) // localhost is one of its names
			slices.Sort(c.want)
		}
		got := tr.dialersAt(&net.TCPAddr{IP: net.ParseIP(c.ip), Port: 40000})
		if !slices.Equal(got, c.want) {
			t.Errorf("dialersAt(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
	if got := tr.dialersAt(&net.UnixAddr{Name: "/x", Net: "unix"}); got != nil {
		t.Errorf("a unix address: %v", got)
	}
}
