package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/internal/daemon"
)

func startDaemon(t *testing.T) string {
	t.Helper()
	return startDaemonWith(t, t.TempDir(), nil)
}

// startDaemonWith runs a daemon in dir; mod adjusts its configuration.
func startDaemonWith(t *testing.T, dir string, mod func(*daemon.Config), opt ...func(*daemon.Options)) string {
	t.Helper()
	sock, _ := startStoppableDaemon(t, dir, mod, opt...)
	return sock
}

// startStoppableDaemon is startDaemonWith that also returns a function
// stopping the daemon (idempotent; cleanup calls it too).
func startStoppableDaemon(t *testing.T, dir string, mod func(*daemon.Config), opt ...func(*daemon.Options)) (string, func()) {
	t.Helper()
	cfg := daemon.DefaultConfig()
	cfg.Node.Name = "n1"
	cfg.Control.Socket = filepath.Join(dir, "control.sock")
	cfg.Metrics.Listen = ""
	cfg.NBD.Listen = []string{"tcp://127.0.0.1:0"}
	v := daemon.DefaultVolume()
	v.Name, v.Device, v.Size = "vol1", filepath.Join(dir, "vol1.img"), 32<<20
	cfg.Volumes = []daemon.VolumeConfig{v}
	if mod != nil {
		mod(&cfg)
	}
	ready := make(chan daemon.Info, 1)
	opts := daemon.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func(i daemon.Info) { ready <- i }}
	for _, f := range opt {
		f(&opts)
	}
	d, err := daemon.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { runErr = d.Run(ctx); close(done) }()
	select {
	case <-ready:
	case <-done:
		t.Fatalf("daemon exited before ready: %v", runErr)
	}
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return cfg.Control.Socket, stop
}

func run(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := execute(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, _, errOut := run("--socket", sock, "status")
	if code != 3 || !strings.Contains(errOut, "replicad is not running") || !strings.Contains(errOut, "systemctl start replicad") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	t.Setenv(control.SocketEnv, sock)
	if code, _, errOut := run("status"); code != 3 || !strings.Contains(errOut, sock) {
		t.Fatalf("socket from the environment: exit %d, %q", code, errOut)
	}
}

func TestCommands(t *testing.T) {
	sock := startDaemon(t)
	code, out, errOut := run("--socket", sock, "status")
	if code != 0 || !strings.Contains(out, "node n1") || !strings.Contains(out, "vol1") || !strings.Contains(errOut+out, "create-md vol1") {
		t.Fatalf("status before create-md: %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = run("--socket", sock, "create-md", "vol1"); code != 0 || !strings.Contains(out, "repctl up vol1") {
		t.Fatalf("create-md: %d %s %s", code, out, errOut)
	}
	if code, _, errOut = run("--socket", sock, "create-md", "vol1"); code != 1 || !strings.Contains(errOut, "--force") {
		t.Fatalf("create-md over existing metadata: %d %s", code, errOut)
	}
	if code, out, _ = run("--socket", sock, "up", "--all"); code != 0 || !strings.Contains(out, "vol1: up, exported as nbd://127.0.0.1:") {
		t.Fatalf("up: %d %s", code, out)
	}
	code, out, _ = run("--socket", sock, "status", "--json")
	var st control.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Volumes) != 1 || st.Volumes[0].State != "up" || st.Volumes[0].Peers == nil {
		t.Fatalf("status --json: %d %s", code, out)
	}
	if code, out, _ = run("--socket", sock, "down", "vol1"); code != 0 || out != "vol1: down\n" {
		t.Fatalf("down: %d %q", code, out)
	}
	if code, _, errOut = run("--socket", sock, "up", "nope"); code != 1 || !strings.Contains(errOut, `no volume named "nope"`) || !strings.Contains(errOut, "hint:") {
		t.Fatalf("up of an unknown volume: %d %s", code, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"up"}, {"up", "a", "--all"}, {"create-md"}, {"status", "--bogus"}} {
		if code, _, errOut := run(args...); code != 2 || !strings.Contains(errOut, "repctl --help") {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
}
