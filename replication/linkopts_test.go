package replication

import (
	"bytes"
	"crypto/tls"
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
// certificate comes from another CA is refused.
func TestTLSLink(t *testing.T) {
	ca, other := testcert.NewCA(t, "replicad test CA"), testcert.NewCA(t, "another CA")
	pool := ca.Pool()
	names := map[uint32]string{0: "alpha", 1: "beta"}
	for _, bad := range []bool{false, true} {
		nodes := twoNodesTransport(t, func(id uint32, tc *TransportConfig) {
			issuer := ca
			if bad && id == 1 {
				issuer = other
			}
			tc.PeerNames = names
			tc.TLS = &tls.Config{Certificates: []tls.Certificate{issuer.Issue(t, names[id])},
				RootCAs: pool, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
		})
		a := nodes[0]
		if !bad {
			waitFor(t, "a TLS connection", func() bool { return peerState(a).Repl == engine.Established })
			continue
		}
		waitFor(t, "a refused TLS connection", func() bool { return strings.Contains(a.rep.Status().LinkError[1], "TLS") })
		if peerState(a).Conn == engine.Connected {
			t.Fatal("connected to a node with a certificate from another CA")
		}
	}
}
