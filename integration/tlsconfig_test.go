package integration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/internal/testcert"
)

// configureTLS writes the node's certificate (issued by issuer for name),
// its key and trusted CA into its directory and adds cluster.tls to its
// config file.
func configureTLS(t *testing.T, n *node, name string, issuer, trusted *testcert.CA) {
	t.Helper()
	certPEM, keyPEM := issuer.IssuePEM(t, name)
	cert, key, ca := filepath.Join(n.dir, "node.crt"), filepath.Join(n.dir, "node.key"), filepath.Join(n.dir, "ca.crt")
	for p, b := range map[string][]byte{cert: certPEM, key: keyPEM, ca: trusted.PEM} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := os.ReadFile(n.config)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(cfg, []byte("\ncluster:\n")) != 1 {
		t.Fatalf("no cluster section to add tls to in %s:\n%s", n.config, cfg)
	}
	tlsKeys := fmt.Sprintf("\ncluster:\n  tls:\n    cert: %s\n    key: %s\n    ca: %s\n", cert, key, ca)
	cfg = bytes.Replace(cfg, []byte("\ncluster:\n"), []byte(tlsKeys), 1)
	if err := os.WriteFile(n.config, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestClusterTLSFromConfig: two processes whose config files set
// cluster.tls (cert, key, ca) connect over mutual TLS and replicate a
// write; the replication port speaks TLS with the node's certificate.
func TestClusterTLSFromConfig(t *testing.T) {
	ca := testcert.NewCA(t, "replicad test CA")
	nodes := newCluster(t, clusterSpec{Nodes: 2, Volume: "r0", Size: "16MiB", Protocol: "C"})
	a, b := nodes[0], nodes[1]
	t.Cleanup(func() { dumpLogsOnFailure(t, a, b) })
	for i, n := range nodes {
		configureTLS(t, n, fmt.Sprintf("n%d", i), ca, ca)
	}
	upPair(a, b, "r0")

	a.writeBlocks("r0", 'T', 5, 1000)
	a.waitSync("r0")
	img, err := os.ReadFile(filepath.Join(b.dir, "r0.img"))
	if err != nil {
		t.Fatal(err)
	}
	for _, blk := range []int64{5, 1000} {
		if got := img[blk*blockSize : (blk+1)*blockSize]; !bytes.Equal(got, block('T', blk)) {
			t.Fatalf("block %d did not reach the secondary over TLS: %x…", blk, got[:16])
		}
	}
	if p := b.peer("r0"); p.Connection != "Connected" || p.Replication != "Established" {
		t.Fatalf("b's peer after the write: %+v", p)
	}

	// The link is TLS, not a config key silently ignored: a's replication
	// port completes a mutual-TLS handshake for a client of the same CA
	// and presents a's certificate.
	certPEM, keyPEM := ca.IssuePEM(t, "probe")
	probe, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", replicationAddr(t, a),
		&tls.Config{ServerName: "n0", RootCAs: pool, Certificates: []tls.Certificate{probe}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("a's replication port does not speak TLS with the configured certificate: %v", err)
	}
	if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "n0" {
		t.Fatalf("a presents a certificate for %q, want n0", cn)
	}
	conn.Close()
}

// TestClusterTLSRefusesOtherCA: a node whose certificate comes from
// another CA (it trusts the cluster's CA) never reaches Connected, whether
// it is the side that dials (the lower node id) or the side that accepts;
// the dialing node's status (last_error) says the TLS handshake failed
// over the certificate, and the accepting node's status and log say a TLS
// handshake from the dialer's address failed.
func TestClusterTLSRefusesOtherCA(t *testing.T) {
	for _, foreign := range []string{"acceptor", "dialer"} {
		t.Run("foreign "+foreign, func(t *testing.T) {
			ca, other := testcert.NewCA(t, "replicad test CA"), testcert.NewCA(t, "some other CA")
			nodes := newCluster(t, clusterSpec{Nodes: 2, Volume: "r0", Size: "16MiB", Protocol: "C"})
			dialer, acceptor := nodes[0], nodes[1] // the lower node id dials
			t.Cleanup(func() { dumpLogsOnFailure(t, dialer, acceptor) })
			dialerCA, acceptorCA := ca, other
			if foreign == "dialer" {
				dialerCA, acceptorCA = other, ca
			}
			configureTLS(t, dialer, "n0", dialerCA, ca)
			configureTLS(t, acceptor, "n1", acceptorCA, ca)
			dialer.start()
			acceptor.start()
			evs := map[*node]*eventStream{dialer: dialer.events(), acceptor: acceptor.events()}
			dialer.create("r0")
			acceptor.create("r0")

			// The acceptor's certificate fails the dialer's check, or the
			// dialer's fails the acceptor's (which then alerts the dialer).
			dialer.waitPeer("r0", "a last_error about the certificate", func(p control.Peer) bool {
				return strings.Contains(p.LastError, "tls") && strings.Contains(p.LastError, "certificate")
			})
			for n, ev := range evs {
				if p := n.peer("r0"); p.Connection == "Connected" || p.ReceivedBytes["other"] != 0 {
					t.Fatalf("%s talked to a peer across a foreign certificate: %+v", n.name(), p)
				}
				for _, e := range ev.all() {
					if e.What == "connection" && e.New == "Connected" {
						t.Fatalf("%s: connection reached Connected: %+v", n.name(), e)
					}
				}
			}
			t.Logf("dialer's last_error: %s", dialer.peer("r0").LastError)
			acceptor.waitPeer("r0", "a last_error naming the refused TLS handshake from n0's address", func(p control.Peer) bool {
				return strings.Contains(p.LastError, "TLS handshake failed") && strings.Contains(p.LastError, "n0")
			})
			t.Logf("acceptor's last_error: %s", acceptor.peer("r0").LastError)
			acceptor.stop(syscall.SIGTERM)
			if !strings.Contains(acceptor.log.String(), "TLS handshake failed") {
				t.Fatalf("the accepting node does not log the failed TLS handshake:\n%s", acceptor.log)
			}
		})
	}
}

// replicationAddr is the node's replication address from its config.
func replicationAddr(t *testing.T, n *node) string {
	t.Helper()
	cfg, err := os.ReadFile(n.config)
	if err != nil {
		t.Fatal(err)
	}
	name := n.name()
	for _, l := range strings.Split(string(cfg), "\n") {
		if strings.Contains(l, "{name: "+name+",") {
			if i := strings.Index(l, `address: "`); i >= 0 {
				rest := l[i+len(`address: "`):]
				return rest[:strings.Index(rest, `"`)]
			}
		}
	}
	t.Fatalf("no address for %s in %s", name, n.config)
	return ""
}
