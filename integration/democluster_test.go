package integration

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/control"
)

// demoLine is one `node=… pid=… config=… socket=… nbd=…` line of
// `replicad demo --nodes N`.
type demoLine struct {
	name, config, socket, nbd string
	pid                       int
}

func parseDemoLine(t *testing.T, l string) demoLine {
	t.Helper()
	kv := map[string]string{}
	for _, f := range strings.Fields(l) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("demo line %q: field %q is not key=value", l, f)
		}
		kv[k] = v
	}
	pid, err := strconv.Atoi(kv["pid"])
	d := demoLine{name: kv["node"], config: kv["config"], socket: kv["socket"], nbd: kv["nbd"], pid: pid}
	if err != nil || d.name == "" || d.config == "" || d.socket == "" || !strings.HasPrefix(d.nbd, "nbd://") {
		t.Fatalf("demo line %q lacks node, pid, config, socket or nbd", l)
	}
	return d
}

// runningDemo is a `replicad demo` process and the lines it printed.
type runningDemo struct {
	t       *testing.T
	cmd     *exec.Cmd
	lines   chan string
	printed []string
}

func startDemo(t *testing.T, args ...string) *runningDemo {
	t.Helper()
	d := &runningDemo{t: t, cmd: exec.Command(bin("replicad"), append([]string{"demo"}, args...)...), lines: make(chan string, 100)}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = d.cmd.Stdout
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.cmd.Process.Kill(); d.cmd.Wait() })
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			d.lines <- s.Text()
		}
		close(d.lines)
	}()
	return d
}

// until reads lines until one starts with prefix and returns it.
func (d *runningDemo) until(prefix string) string {
	d.t.Helper()
	deadline := time.After(90 * time.Second)
	for {
		select {
		case l, ok := <-d.lines:
			if !ok {
				d.t.Fatalf("demo exited before printing %q; it printed:\n%s", prefix, strings.Join(d.printed, "\n"))
			}
			d.printed = append(d.printed, l)
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			d.t.Fatalf("demo did not print %q within 90s; it printed:\n%s", prefix, strings.Join(d.printed, "\n"))
		}
	}
}

// nodes returns the node lines printed so far.
func (d *runningDemo) nodes() []demoLine {
	d.t.Helper()
	var out []demoLine
	for _, l := range d.printed {
		if strings.HasPrefix(l, "node=") && strings.Contains(l, " config=") {
			out = append(out, parseDemoLine(d.t, l))
		}
	}
	return out
}

// stop sends SIGINT and returns the rest of the output after the demo exits.
func (d *runningDemo) stop() []string {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGINT)
	var rest []string
	for l := range d.lines {
		rest = append(rest, l)
	}
	if err := d.cmd.Wait(); err != nil {
		d.t.Fatalf("demo exit after SIGINT: %v\n%s", err, strings.Join(rest, "\n"))
	}
	return rest
}

// TestDemoCluster runs `replicad demo --nodes 2` as a user would: it
// parses the node lines, kills the secondary by its printed pid, writes on
// the primary meanwhile, restarts the secondary with the printed command
// (`replicad --config PATH`) and sees it resync to identical data.
func TestDemoCluster(t *testing.T) {
	dir := t.TempDir()
	demo := startDemo(t, "--nodes", "2", "--protocol", "A", "--port", "0", "--size", "64MiB", "--dir", dir)
	demo.until("Stop:")
	lines := demo.nodes()
	if len(lines) != 2 || lines[0].name != "n0" || lines[1].name != "n1" {
		t.Fatalf("want lines for n0 and n1; the demo printed:\n%s", strings.Join(demo.printed, "\n"))
	}
	var nodes []*node
	for _, l := range lines {
		if filepath.Dir(l.config) != filepath.Join(dir, l.name) {
			t.Errorf("node %s's config %s is not under DIR/%s/", l.name, l.config, l.name)
		}
		nodes = append(nodes, &node{t: t, dir: filepath.Dir(l.config), config: l.config, socket: l.socket})
	}
	n0, n1 := nodes[0], nodes[1]
	if v := n0.volume("r0"); v.Role != "Primary" || v.Disk != "UpToDate" || n0.uri("r0") != lines[0].nbd {
		t.Fatalf("n0 after the demo started: %+v (printed nbd=%s)", v, lines[0].nbd)
	}
	if p := n1.peer("r0"); p.Connection != "Connected" || p.Disk != "UpToDate" {
		t.Fatalf("n1's peer after the demo started: %+v", p)
	}
	if !strings.Contains(readFile(t, n0.config), "protocol: A") {
		t.Fatalf("--protocol A is not in %s", n0.config)
	}
	n0.writeBlocks("r0", 'a', 1, 2, 3)

	// Kill n1 by its printed pid; the demo notices and says how to restart.
	if err := syscall.Kill(lines[1].pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the printed pid %d: %v", lines[1].pid, err)
	}
	if l := demo.until("node=n1 pid="); !strings.Contains(l, "exited") || !strings.Contains(l, "replicad --config "+lines[1].config) {
		t.Fatalf("demo's line about the killed node: %q", l)
	}
	n0.waitPeer("r0", "n1 gone", func(p control.Peer) bool { return p.Connection != "Connected" })
	n0.writeBlocks("r0", 'b', 2, 1000, 16000)

	// The printed restart command, as given.
	n1.args = []string{"--config", lines[1].config}
	n1.start()
	n1.waitSync("r0")
	n0.waitSync("r0")
	for blk, tag := range map[int64]byte{1: 'a', 2: 'b', 3: 'a', 1000: 'b', 16000: 'b'} {
		if got := n1.tagOf("r0", blk); got != tag {
			t.Errorf("block %d on the restarted n1 holds %q, want %q", blk, got, tag)
		}
	}
	sameData(t, "r0", n0, n1)

	rest := demo.stop()
	if !containsPrefix(rest, "node n1 (started outside the demo) is still running") || !containsPrefix(rest, "replicad demo stopped.") {
		t.Fatalf("demo's last lines: %q", rest)
	}
	if _, err := n0.status(); err == nil {
		t.Fatalf("n0, started by the demo, still answers after the demo stopped")
	}
	if _, err := os.Stat(lines[0].config); err != nil {
		t.Fatalf("--dir was not kept: %v", err)
	}
	n1.stop(syscall.SIGTERM)

	// Without --dir, the temporary directory goes away with the demo.
	demo = startDemo(t, "--nodes", "2", "--port", "0", "--size", "16MiB")
	demo.until("Stop:")
	tmp := filepath.Dir(filepath.Dir(demo.nodes()[0].config))
	demo.stop()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary demo directory %s still exists after the demo (%v)", tmp, err)
	}
}

func containsPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
