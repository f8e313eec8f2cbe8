package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/internal/daemon"
)

// startDLMDaemon runs a one-node cluster with the DLM and lockspace "ls".
func startDLMDaemon(t *testing.T) (string, func()) {
	t.Helper()
	addrs := make([]string, 2)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = l.Addr().String()
		l.Close()
	}
	dir := t.TempDir()
	return startStoppableDaemon(t, dir, func(c *daemon.Config) {
		c.Volumes = nil
		c.Node.ID = 1
		c.Cluster = daemon.ClusterConfig{Secret: "repctl-test-secret-0123456789",
			Nodes: []daemon.ClusterNode{{Name: "n1", ID: 1, Address: addrs[0], DLMAddress: addrs[1]}}}
		c.DLM.Enabled = true
		c.DLM.Socket = filepath.Join(dir, "dlm.sock")
		c.DLM.Lockspaces = []daemon.DLMLockspace{{Name: "ls"}}
	})
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLockNotConfigured(t *testing.T) {
	sock := startDaemon(t)
	code, _, errOut := run("--socket", sock, "lock", "ls")
	if code != 1 || !strings.Contains(errOut, "DLM is not enabled") || !strings.Contains(errOut, "dlm.enabled: true") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestLockCommands(t *testing.T) {
	sock, _ := startDLMDaemon(t)
	lock := func(args ...string) (int, string, string) {
		return run(append([]string{"--socket", sock, "lock"}, args...)...)
	}
	res := []string{"--lockspace", "ls", "--resource", "r"}
	with := func(extra ...string) []string { return append(append([]string{}, res...), extra...) }

	code, out, errOut := lock("ls")
	if code != 0 || !strings.Contains(out, "DLM on n1 (node id 1), quorate") || !strings.Contains(out, "n1    1   self") {
		t.Fatalf("ls: %d\n%s%s", code, out, errOut)
	}
	var info control.DLM
	if code, out, _ = lock("ls", "--json"); code != 0 || json.Unmarshal([]byte(out), &info) != nil || len(info.Lockspaces) != 1 {
		t.Fatalf("ls --json: %d %s", code, out)
	}
	for info.Lockspaces[0].State != "running" { // the first recovery of a one-node lockspace
		time.Sleep(10 * time.Millisecond)
		_, out, _ = lock("ls", "--json")
		json.Unmarshal([]byte(out), &info)
	}

	if code, out, errOut = lock(append([]string{"take"}, with("--mode", "EX")...)...); code != 0 || !strings.Contains(out, "EX granted on r in lockspace ls") {
		t.Fatalf("take EX: %d %s %s", code, out, errOut)
	}
	if code, _, errOut = lock(append([]string{"take"}, with("--mode", "PR", "--noqueue")...)...); code != exitNotAcquired || !strings.Contains(errOut, "not acquired") {
		t.Fatalf("take PR --noqueue over EX: %d %s", code, errOut)
	}
	if code, _, errOut = lock(append([]string{"take"}, with("--mode", "PR", "--timeout", "100ms")...)...); code != exitNotAcquired || !strings.Contains(errOut, "--timeout") {
		t.Fatalf("take PR --timeout over EX: %d %s", code, errOut)
	}
	if code, out, _ = lock("dump", "ls"); code != 0 || !strings.Contains(out, `Resource len  1  "r"`) || !strings.Contains(out, "Master Copy") || !strings.Contains(out, " EX ") {
		t.Fatalf("dump: %d\n%s", code, out)
	}
	if code, out, errOut = lock(append([]string{"convert"}, with("--from", "EX", "--to", "PR")...)...); code != 0 || !strings.Contains(out, "EX -> PR") {
		t.Fatalf("convert: %d %s %s", code, out, errOut)
	}
	if code, _, errOut = lock(append([]string{"take"}, with("--mode", "PR", "--noqueue")...)...); code != 0 {
		t.Fatalf("take PR next to PR: %d %s", code, errOut)
	}
	if code, _, errOut = lock(append([]string{"release"}, with("--mode", "EX")...)...); code != 1 || !strings.Contains(errOut, "held in another mode") {
		t.Fatalf("release of a mode not held: %d %s", code, errOut)
	}
	for i := 0; i < 2; i++ {
		if code, out, errOut = lock(append([]string{"release"}, with("--mode", "PR")...)...); code != 0 || !strings.Contains(out, "released") {
			t.Fatalf("release PR %d: %d %s %s", i, code, out, errOut)
		}
	}
	if code, _, errOut = lock(append([]string{"release"}, with("--mode", "PR")...)...); code != 1 || !strings.Contains(errOut, "no lock taken with 'repctl lock take'") {
		t.Fatalf("release with nothing held: %d %s", code, errOut)
	}

	// run: the command's exit status; the lock held while it runs, and
	// released after.
	if code, _, errOut = lock(append(append([]string{"run"}, with("--mode", "EX")...), "sh", "-c", "exit 7")...); code != 7 {
		t.Fatalf("run exit 7: %d %s", code, errOut)
	}
	if code, _, errOut = lock(append(append([]string{"run"}, with("--mode", "EX")...), "/nonexistent/cmd")...); code != 127 {
		t.Fatalf("run of a missing command: %d %s", code, errOut)
	}
	dir := t.TempDir()
	started, finish := filepath.Join(dir, "started"), filepath.Join(dir, "finish")
	done := make(chan int, 1)
	go func() {
		code, _, _ := lock(append(append([]string{"run"}, with("--mode", "EX")...), "--",
			"sh", "-c", "touch "+started+"; while [ ! -e "+finish+" ]; do sleep 0.01; done; echo done")...)
		done <- code
	}()
	waitFile(t, started)
	if code, _, _ = lock(append(append([]string{"run"}, with("--mode", "PR", "--noqueue", "--conflict-exit-code", "9")...), "true")...); code != 9 {
		t.Fatalf("run --noqueue while another run holds EX: %d", code)
	}
	if _, out, _ = lock("dump", "ls", "--json"); !strings.Contains(out, `"mode": "EX"`) {
		t.Fatalf("dump during run:\n%s", out)
	}
	os.WriteFile(finish, nil, 0o644)
	if code := <-done; code != 0 {
		t.Fatalf("run: exit %d", code)
	}
	if code, _, errOut = lock(append(append([]string{"run"}, with("--mode", "EX", "--noqueue")...), "true")...); code != 0 {
		t.Fatalf("run after the first released: %d %s", code, errOut)
	}

	if code, out, errOut = lock("join", "second", "--lvb-len", "64"); code != 0 || !strings.Contains(out, "joined second") {
		t.Fatalf("join: %d %s %s", code, out, errOut)
	}
	if code, out, _ = lock("leave", "second"); code != 0 || out != "left second\n" {
		t.Fatalf("leave: %d %q", code, out)
	}
	if code, _, errOut = lock("take", "--lockspace", "second", "--resource", "r", "--mode", "EX"); code != 1 || !strings.Contains(errOut, "repctl lock join second") {
		t.Fatalf("take in a lockspace not joined: %d %s", code, errOut)
	}
	if code, _, errOut = lock("fence-confirm", "n1", "--yes"); code != 1 || !strings.Contains(errOut, "this node") {
		t.Fatalf("fence-confirm of this node: %d %s", code, errOut)
	}
	var in bytes.Buffer
	in.WriteString("no\n")
	var o, e bytes.Buffer
	if code := executeIO([]string{"--socket", sock, "lock", "fence-confirm", "n2"}, &in, &o, &e); code != 1 || !strings.Contains(e.String(), "not confirmed") {
		t.Fatalf("fence-confirm answered no: %d %s", code, e.String())
	}
	for _, args := range [][]string{
		{"take", "--resource", "r", "--mode", "EX"},
		{"take", "--lockspace", "ls", "--resource", "r", "--mode", "XX"},
		{"take", "--lockspace", "ls", "--resource", strings.Repeat("x", 65), "--mode", "EX"},
		{"run", "--lockspace", "ls", "--resource", "r", "--mode", "EX"},
		{"leave", "ls", "--force", "4"},
		{"join", "x", "--lvb-len", "48"},
	} {
		if code, _, errOut := lock(args...); code != 2 {
			t.Errorf("lock %v: exit %d, %s; want a usage error", args, code, errOut)
		}
	}
}

// A command run under a lock is killed when the DLM connection is lost
// (replicad stopped), so it never goes on without its lock.
func TestLockRunKilledWhenTheLockIsLost(t *testing.T) {
	sock, stop := startDLMDaemon(t)
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, _, errOut := run("--socket", sock, "lock", "run", "--lockspace", "ls", "--resource", "r", "--mode", "EX",
			"sh", "-c", "touch "+started+"; sleep 60")
		done <- result{code, errOut}
	}()
	waitFile(t, started)
	stop()
	select {
	case r := <-done:
		if r.code != 1 || !strings.Contains(r.stderr, "lock on r in lockspace ls is no longer held") {
			t.Fatalf("exit %d, %s", r.code, r.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lock run still running after replicad stopped")
	}
}
