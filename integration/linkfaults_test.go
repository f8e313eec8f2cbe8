package integration

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/control"
)

// wrongSecretPair starts two nodes whose cluster secrets differ, with r0
// up on both. a has the lower node id, so a dials and b accepts.
func wrongSecretPair(t *testing.T) (a, b *node) {
	t.Helper()
	nodes := newCluster(t, clusterSpec{Nodes: 2, Volume: "r0", Size: "16MiB", Protocol: "C"})
	a, b = nodes[0], nodes[1]
	cfg := readFile(t, b.config)
	if !strings.Contains(cfg, "integration-test-secret-0123456789") {
		t.Fatalf("no secret to change in %s", b.config)
	}
	if err := os.WriteFile(b.config, []byte(strings.ReplaceAll(cfg, "integration-test-secret-0123456789", "another-secret-altogether-987654")), 0o644); err != nil {
		t.Fatal(err)
	}
	a.start()
	b.start()
	a.create("r0")
	b.create("r0")
	return a, b
}

// TestWrongSecretRefused: two nodes whose cluster secrets differ never
// connect; the dialing node's status says the secrets differ and the
// accepting node logs that it refused the connection.
func TestWrongSecretRefused(t *testing.T) {
	a, b := wrongSecretPair(t)
	a.waitPeer("r0", "a last_error about the secret", func(p control.Peer) bool {
		return strings.Contains(p.LastError, "shared secret")
	})
	time.Sleep(time.Second) // a few more attempts (connect-interval 200ms)
	for _, n := range []*node{a, b} {
		if p := n.peer("r0"); p.Connection == "Connected" || p.ReceivedBytes["other"] != 0 {
			t.Fatalf("%s talked to its peer with a wrong secret: %+v", n.name(), p)
		}
	}
	b.stop(syscall.SIGTERM)
	if !strings.Contains(b.log.String(), "authentication failed") {
		t.Fatalf("the accepting node does not log the refused connection:\n%s", b.log)
	}
}

// TestWrongSecretInAcceptorStatus: the accepting node's status says why
// its peer cannot connect, like the dialing node's does.
func TestWrongSecretInAcceptorStatus(t *testing.T) {
	if os.Getenv("REPLICAD_KNOWN_BUGS") == "" {
		t.Skip("bug: a node that refuses an incoming connection (wrong secret) shows the peer as Connecting with no last_error; only its log says why (set REPLICAD_KNOWN_BUGS=1 to run)")
	}
	_, b := wrongSecretPair(t)
	b.waitPeer("r0", "a last_error about the secret", func(p control.Peer) bool {
		return strings.Contains(p.LastError, "secret") || strings.Contains(p.LastError, "authentication")
	})
}

// TestDisconnectWhileConnecting: `repctl disconnect` on a node whose peer
// already went away (so it is Connecting) makes it StandAlone, and it stays
// so when the peer comes back.
func TestDisconnectWhileConnecting(t *testing.T) {
	if os.Getenv("REPLICAD_KNOWN_BUGS") == "" {
		t.Skip("bug: disconnect on a Connecting peer sets standAlone but leaves the connection Connecting (engine.Configure); the node reconnects when the peer returns (set REPLICAD_KNOWN_BUGS=1 to run)")
	}
	a, b := startPair(t, clusterSpec{Volume: "r0", Size: "16MiB", Protocol: "C"})
	a.mustRepctl("disconnect", "r0")
	b.waitPeer("r0", "a gone", func(p control.Peer) bool { return p.Connection != "Connected" })
	b.mustRepctl("disconnect", "r0")
	b.waitPeer("r0", "StandAlone after repctl disconnect", func(p control.Peer) bool { return p.Connection == "StandAlone" })
	a.mustRepctl("connect", "r0")
	time.Sleep(2 * time.Second)
	if p := b.peer("r0"); p.Connection != "StandAlone" {
		t.Fatalf("b was disconnected by the operator but its peer is %s once a connects: %+v", p.Connection, p)
	}
}
