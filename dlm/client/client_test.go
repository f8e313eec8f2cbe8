package client_test

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/dlm"
	"github.com/replicad/replicad/dlm/client"
	"github.com/replicad/replicad/dlm/locktable"
)

// serve starts a one-node DLM serving the local protocol on a socket.
func serve(t *testing.T) string {
	t.Helper()
	peerLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := dlm.DefaultConfig()
	cfg.NodeID, cfg.Listener, cfg.Secret = 1, peerLn, []byte("0123456789abcdef")
	cfg.TickInterval = 10 * time.Millisecond
	n, err := dlm.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dlm.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.ServeLocal(ln) }()
	t.Cleanup(func() {
		n.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeLocal: %v", err)
		}
	})
	return path
}

func ctxT(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func dial(t *testing.T, path string) *client.Client {
	t.Helper()
	c, err := client.Dial(ctxT(t), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLockConvertUnlockListDump(t *testing.T) {
	path := serve(t)
	c := dial(t, path)
	ctx := ctxT(t)
	if _, _, err := c.Lock(ctx, "ls", "r", locktable.EX, 0, nil); !errors.Is(err, client.ErrNotJoined) {
		t.Fatalf("lock before join: %v", err)
	}
	if err := c.Join(ctx, "ls", 64); err != nil {
		t.Fatal(err)
	}
	l, comp, err := c.Lock(ctx, "ls", "r", locktable.EX, locktable.ValBlk, make([]byte, 64))
	if err != nil || comp.Mode != locktable.EX {
		t.Fatalf("lock: %+v %v", comp, err)
	}
	lvb := []byte(strings.Repeat("x", 64))
	if comp, err := l.Convert(ctx, locktable.NL, locktable.ValBlk, lvb); err != nil || comp.Mode != locktable.NL {
		t.Fatalf("convert: %+v %v", comp, err)
	}
	other := dial(t, path)
	r, comp, err := other.Lock(ctx, "ls", "r", locktable.PR, locktable.ValBlk, nil)
	if err != nil || string(comp.LVB) != string(lvb) {
		t.Fatalf("second client's read: %+v %v", comp, err)
	}
	list, err := c.Lockspaces(ctx)
	if err != nil || len(list) != 1 || list[0].Lockspace != "ls" || list[0].State != "running" {
		t.Fatalf("list: %+v %v", list, err)
	}
	d, err := c.Dump(ctx, "ls")
	if err != nil || len(d.Resources) != 1 || len(d.Resources[0].Granted) != 2 {
		t.Fatalf("dump: %+v %v", d, err)
	}
	if !strings.Contains(d.Text(), "Granted Queue") {
		t.Fatalf("dump text:\n%s", d.Text())
	}
	if err := r.Unlock(ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(ctx, 0, nil); !errors.Is(err, client.ErrUnknownLock) {
		t.Fatalf("double unlock: %v", err)
	}
}

func TestDisconnectReleasesUnlessPersistent(t *testing.T) {
	path := serve(t)
	ctx := ctxT(t)
	a, err := client.Dial(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Join(ctx, "ls", 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Lock(ctx, "ls", "plain", locktable.EX, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Lock(ctx, "ls", "kept", locktable.EX, locktable.Persistent, nil); err != nil {
		t.Fatal(err)
	}
	b := dial(t, path)
	waiter, err := b.LockAsync(ctx, "ls", "plain", locktable.PR, 0, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	a.Close() // the program exits
	if comp := <-waiter.Completions(); comp.Result != locktable.ResultGranted {
		t.Fatalf("after disconnect: %+v", comp)
	}
	if _, _, err := b.Lock(ctx, "ls", "kept", locktable.PR, locktable.NoQueue, nil); !errors.Is(err, client.ErrWouldBlock) {
		t.Fatalf("persistent lock released on disconnect: %v", err)
	}
	// a script adopts the orphan and releases it
	l, comp, err := b.Lock(ctx, "ls", "kept", locktable.EX, locktable.Orphan, nil)
	if err != nil || comp.Mode != locktable.EX {
		t.Fatalf("adopt: %+v %v", comp, err)
	}
	if err := l.Unlock(ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Lock(ctx, "ls", "kept", locktable.PR, locktable.NoQueue, nil); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// `repctl lock run`: the lock is held while the command runs and released
// when it ends.
func TestRunLockedHoldsWhileTheCommandRuns(t *testing.T) {
	path := serve(t)
	ctx := ctxT(t)
	c := dial(t, path)
	probe := dial(t, path)
	if err := c.Join(ctx, "ls", 0); err != nil {
		t.Fatal(err)
	}
	var during error
	err := client.RunLocked(ctx, c, "ls", "job", locktable.EX, 0, func(ctx context.Context) error {
		_, _, during = probe.Lock(ctx, "ls", "job", locktable.PR, locktable.NoQueue, nil)
		return exec.CommandContext(ctx, "sh", "-c", "exit 3").Run()
	})
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("RunLocked returned %v, want the command's exit status 3", err)
	}
	if !errors.Is(during, client.ErrWouldBlock) {
		t.Fatalf("lock not held while the command ran: %v", during)
	}
	if _, _, err := probe.Lock(ctx, "ls", "job", locktable.EX, locktable.NoQueue, nil); err != nil {
		t.Fatalf("lock not released after the command: %v", err)
	}
}

func TestBlockingCallbacksReachTheClient(t *testing.T) {
	path := serve(t)
	ctx := ctxT(t)
	a, b := dial(t, path), dial(t, path)
	if err := a.Join(ctx, "ls", 0); err != nil {
		t.Fatal(err)
	}
	l, err := a.LockAsync(ctx, "ls", "r", locktable.EX, 0, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if comp := <-l.Completions(); comp.Result != locktable.ResultGranted {
		t.Fatal(comp)
	}
	if _, err := b.LockAsync(ctx, "ls", "r", locktable.CR, 0, nil, false); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-l.Blocking():
		if m != locktable.CR {
			t.Fatalf("blocking mode %v", m)
		}
	case <-ctx.Done():
		t.Fatal("no blocking callback")
	}
}

func TestGarbageClosesOnlyThatConnection(t *testing.T) {
	path := serve(t)
	ctx := ctxT(t)
	good := dial(t, path)
	if err := good.Join(ctx, "ls", 0); err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte{0, 0, 0, 5, 9, 9, 9, 9, 9})
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := raw.Read(make([]byte, 16)); err == nil {
		t.Fatalf("server answered %d bytes of garbage instead of closing", n)
	}
	if _, _, err := good.Lock(ctx, "ls", "r", locktable.EX, 0, nil); err != nil {
		t.Fatalf("other client after garbage: %v", err)
	}
}
