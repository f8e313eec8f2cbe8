package integration

import (
	"fmt"
	"os"
	"regexp"
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
	_, b := wrongSecretPair(t)
	b.waitPeer("r0", "a last_error about the secret", func(p control.Peer) bool {
		return strings.Contains(p.LastError, "secret") || strings.Contains(p.LastError, "authentication")
	})
}

// TestDisconnectWhileConnecting: `repctl disconnect` on a node whose peer
// already went away (so it is Connecting) makes it StandAlone, and it stays
// so when the peer comes back.
func TestDisconnectWhileConnecting(t *testing.T) {
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

// TestCorruptedWriteDetected: a proxy between the nodes flips a byte in the
// data of one replicated write. The receiving node's crc32c check catches
// it and drops the link ("checksum mismatch"); after reconnecting, the
// block is resynced and both nodes hold the same data; `repctl status`
// still gives the reason (last_disconnect) once they are in sync again.
func TestCorruptedWriteDetected(t *testing.T) {
	nodes := newCluster(t, clusterSpec{Nodes: 2, Volume: "r0", Size: "16MiB", Protocol: "C"})
	a, b := nodes[0], nodes[1]
	// a (node id 0) dials b: point a's address for b at the proxy.
	cfg := readFile(t, a.config)
	m := regexp.MustCompile(`name: n1, id: 1, address: "([^"]+)"`).FindStringSubmatch(cfg)
	if m == nil {
		t.Fatalf("no address for n1 in %s", a.config)
	}
	proxy := newCorruptingProxy(t, m[1])
	if err := os.WriteFile(a.config, []byte(strings.Replace(cfg, m[1], proxy.addr(), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	upPair(a, b, "r0")
	a.writeBlocks("r0", 'x', 1, 2)
	if conns, writes, _ := proxy.counts(); conns == 0 || writes < 2 {
		t.Fatalf("the replication link does not go through the proxy: %d connections, %d writes relayed", conns, writes)
	}

	evs := b.events("--volume", "r0")
	sentBefore := a.peer("r0").SentBytes["resync"]
	const blk = 777
	proxy.arm(blk * blockSize)
	a.writeBlocks("r0", 'c', blk-1, blk, blk+1)
	ev := evs.wait("b drops the link on a checksum mismatch", func(e control.Event) bool {
		return e.What == "connection" && e.Old == "Connected" && strings.Contains(e.Reason, "checksum mismatch")
	})
	t.Logf("n1: %s -> %s (%s)", ev.Old, ev.New, ev.Reason)
	if _, _, corrupted := proxy.counts(); corrupted != 1 {
		t.Fatalf("the proxy corrupted %d frames, want 1", corrupted)
	}

	a.waitSync("r0")
	b.waitSync("r0")
	// Connected again, the status still says why the link dropped.
	if p := b.peer("r0"); !strings.Contains(p.LastDisconnect, "checksum mismatch") {
		t.Errorf("b's peer last_disconnect %q once in sync again, want the checksum mismatch", p.LastDisconnect)
	}
	if sent := a.peer("r0").SentBytes["resync"] - sentBefore; sent < blockSize {
		t.Errorf("a sent %d resync bytes after the corrupted write; the block (%d bytes) was not resynced", sent, blockSize)
	}
	for _, x := range []int64{blk - 1, blk, blk + 1} {
		if got := b.tagOf("r0", x); got != 'c' {
			t.Errorf("block %d on b holds %q after the resync, want 'c'", x, got)
		}
	}
	sameData(t, "r0", a, b)
}

// TestEventsStream: `repctl events` streams the state changes of a
// disconnect, a connect and the resync that follows, in order.
func TestEventsStream(t *testing.T) {
	a, _ := startPair(t, clusterSpec{Volume: "r0", Size: "16MiB", Protocol: "C"})
	evs := a.events()
	if out := a.mustRepctl("disconnect", "r0"); !strings.Contains(out, "peer n1 StandAlone") {
		t.Errorf("repctl disconnect printed %q; want the peer StandAlone", out)
	}
	a.writeBlocks("r0", 'e', 10, 20, 30)
	a.mustRepctl("connect", "r0")
	a.waitSync("r0")
	want := []struct{ what, old, new, reason string }{
		{"connection", "Connected", "StandAlone", "operator"},
		{"connection", "StandAlone", "Connecting", "connect"},
		{"connection", "Connecting", "Connected", ""},
		{"replication", "Off", "WFBitmap", "changed data"},
		{"replication", "WFBitmap", "SyncSource", ""},
		{"replication", "SyncSource", "Established", "resync finished"},
	}
	waitUntil(t, "the events of the disconnect, connect and resync, in order", 30*time.Second, func() (bool, string) {
		evs := evs.all()
		i := 0
		for _, e := range evs {
			if i < len(want) && e.Volume == "r0" && e.Peer == "n1" && e.What == want[i].what && e.Old == want[i].old && e.New == want[i].new && strings.Contains(e.Reason, want[i].reason) {
				i++
			}
		}
		return i == len(want), fmt.Sprintf("matched %d of %d in %+v", i, len(want), evs)
	})
}
