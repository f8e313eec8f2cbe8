package integration

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/nbd"
)

// TestDemoClusterThreeNodes runs `replicad demo --nodes 3` as its output
// tells a user to: three node lines with distinct nbd:// URIs; data written
// to the primary's export reads the same on the other two; the printed
// failover (kill the primary, repctl primary on n1) and restart (replicad
// --config) commands work, and the three converge; Ctrl-C stops the nodes
// the demo started.
func TestDemoClusterThreeNodes(t *testing.T) {
	dir := t.TempDir()
	demo := startDemo(t, "--nodes", "3", "--port", "0", "--size", "64MiB", "--dir", dir)
	demo.until("Stop:")
	lines := demo.nodes()
	if len(lines) != 3 {
		t.Fatalf("want three node lines; the demo printed:\n%s", strings.Join(demo.printed, "\n"))
	}
	uris := map[string]bool{}
	var nodes []*node
	for i, l := range lines {
		if want := fmt.Sprintf("n%d", i); l.name != want {
			t.Fatalf("node line %d names %s, want %s", i, l.name, want)
		}
		uris[l.nbd] = true
		n := &node{t: t, dir: filepath.Dir(l.config), config: l.config, socket: l.socket}
		if got := n.uri("r0"); got != l.nbd {
			t.Errorf("%s: printed nbd=%s, its status exports %s", l.name, l.nbd, got)
		}
		nodes = append(nodes, n)
	}
	if len(uris) != 3 {
		t.Fatalf("the three nodes' nbd URIs are not distinct: %v", uris)
	}
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]
	if v := n0.volume("r0"); v.Role != "Primary" || v.Disk != "UpToDate" || len(v.Peers) != 2 {
		t.Fatalf("n0 after the demo started: %s", describeVolume(v))
	}
	for _, n := range []*node{n1, n2} {
		if p := n.peerNamed("r0", "n0"); p.Connection != "Connected" || p.Role != "Primary" || !p.InItsSyncSet {
			t.Fatalf("%s's view of the primary after the demo started: %s", n.name(), describeVolume(n.volume("r0")))
		}
	}

	// Written to the primary's printed URI; read on the others' printed URIs.
	writeURI(t, lines[0].nbd, 'a', 1, 2, 3, 1000)
	for _, l := range lines[1:] {
		for _, blk := range []int64{1, 2, 3, 1000} {
			if got := readTagURI(t, l.nbd, blk); got != 'a' {
				t.Errorf("block %d on %s (%s) holds %q after the primary's write completed; want 'a' (protocol C)", blk, l.name, l.nbd, got)
			}
		}
	}
	sameData(t, "r0", n0, n1, n2)

	// The printed failover: "Failover: kill PID; repctl --socket S primary r0".
	failover := strings.Fields(strings.NewReplacer(";", " ").Replace(printedLine(t, demo, "Failover:")))
	if len(failover) != 8 || failover[1] != "kill" || failover[3] != "repctl" {
		t.Fatalf("the demo's failover line: %q", failover)
	}
	pid, err := strconv.Atoi(failover[2])
	if err != nil || pid != lines[0].pid {
		t.Fatalf("the failover line kills %q, not the primary's pid %d", failover[2], lines[0].pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the printed pid %d: %v", pid, err)
	}
	if l := demo.until("node=n0 pid="); !strings.Contains(l, "exited") {
		t.Fatalf("demo's line about the killed node: %q", l)
	}
	n1.waitPeerOf("r0", "n0", "the killed primary gone", func(p control.Peer) bool { return p.Connection != "Connected" })
	if out, err := exec.Command(bin("repctl"), failover[4:]...).CombinedOutput(); err != nil {
		t.Fatalf("the printed failover command repctl %v: %v\n%s", failover[4:], err, out)
	}
	n2.waitPeerOf("r0", "n1", "the new primary", func(p control.Peer) bool {
		return p.Connection == "Connected" && p.Replication == "Established" && p.Role == "Primary" && p.InItsSyncSet
	})
	writeURI(t, lines[1].nbd, 'b', 2, 2000, 16000)

	// The printed restart: "Restart: replicad --config PATH   (…)".
	restart := strings.Fields(printedLine(t, demo, "Restart:"))
	if len(restart) < 4 || restart[1] != "replicad" || restart[2] != "--config" || restart[3] != lines[0].config {
		t.Fatalf("the demo's restart line: %q", restart)
	}
	n0.args = restart[2:4]
	n0.start()
	waitMeshInSync(t, "r0", n0, n1, n2)
	for _, n := range nodes {
		for blk, tag := range map[int64]byte{1: 'a', 2: 'b', 3: 'a', 1000: 'a', 2000: 'b', 16000: 'b'} {
			if got := n.tagOf("r0", blk); got != tag {
				t.Errorf("block %d on %s holds %q, want %q", blk, n.name(), got, tag)
			}
		}
	}
	sameData(t, "r0", n0, n1, n2)

	rest := demo.stop()
	if !containsPrefix(rest, "node n0 (started outside the demo) is still running") || !containsPrefix(rest, "replicad demo stopped.") {
		t.Fatalf("demo's last lines: %q", rest)
	}
	for _, n := range []*node{n1, n2} {
		if _, err := n.status(); err == nil {
			t.Errorf("%s, started by the demo, still answers after the demo stopped", n.name())
		}
	}
	if err := n0.stop(syscall.SIGTERM); err != nil {
		t.Errorf("n0 (restarted by hand) after SIGTERM: %v\n%s", err, n0.log)
	}
}

// printedLine returns the first line the demo printed that starts with
// prefix.
func printedLine(t *testing.T, d *runningDemo, prefix string) string {
	t.Helper()
	for _, l := range d.printed {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("the demo printed no %q line:\n%s", prefix, strings.Join(d.printed, "\n"))
	return ""
}

// writeURI writes block(tag, blk) at each block to an nbd://HOST:PORT/r0
// export and flushes.
func writeURI(t *testing.T, uri string, tag byte, blocks ...int64) {
	t.Helper()
	c, err := nbd.Dial(context.Background(), "tcp", hostport(t, uri, "r0"), "r0", nil)
	if err != nil {
		t.Fatalf("nbd connect to %s: %v", uri, err)
	}
	defer c.Close()
	for _, blk := range blocks {
		if err := c.WriteAt(context.Background(), block(tag, blk), blk*blockSize, false); err != nil {
			t.Fatalf("write block %d to %s: %v", blk, uri, err)
		}
	}
	if err := c.Flush(context.Background()); err != nil {
		t.Fatalf("flush %s: %v", uri, err)
	}
}

// readTagURI reads a block from an nbd://HOST:PORT/r0 export and returns
// the tag of the write it holds.
func readTagURI(t *testing.T, uri string, blk int64) byte {
	t.Helper()
	c, err := nbd.Dial(context.Background(), "tcp", hostport(t, uri, "r0"), "r0", nil)
	if err != nil {
		t.Fatalf("nbd connect to %s: %v", uri, err)
	}
	defer c.Close()
	buf := make([]byte, blockSize)
	if err := c.ReadAt(context.Background(), buf, blk*blockSize); err != nil {
		t.Fatalf("read block %d from %s: %v", blk, uri, err)
	}
	if !bytes.Equal(buf, block(buf[0], blk)) && !bytes.Equal(buf, make([]byte, blockSize)) {
		t.Fatalf("block %d on %s holds neither a test write nor zeroes: %x…", blk, uri, buf[:16])
	}
	return buf[0]
}
