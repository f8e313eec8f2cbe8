package integration

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/nbd"
)

// TestCrashRecovery kills replicad with SIGKILL while it serves writes.
// Everything flushed before the kill is there after a restart, and the
// volume is flagged as a crashed primary (its activity log replayed).
// A SIGTERM'd daemon, by contrast, restarts clean.
func TestCrashRecovery(t *testing.T) {
	n := newNode(t, volumeSpec{Name: "c", Size: "128MiB"})
	n.start()
	n.create("c")
	ctx := context.Background()
	addr := hostport(t, n.uri("c"), "c")
	c, err := nbd.Dial(ctx, "tcp", addr, "c", nil)
	if err != nil {
		t.Fatal(err)
	}
	flushed := bytes.Repeat([]byte("flushed!"), 8192)
	if err := c.WriteAt(ctx, flushed, 7<<20, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 64; i++ { // unflushed writes in flight at the kill
		c.WriteAt(ctx, bytes.Repeat([]byte{byte(i)}, 65536), 32<<20+i*65536, false)
	}
	n.stop(syscall.SIGKILL)
	n.start()
	v := n.volume("c")
	if v.State != "up" || !slices.Contains(v.Flags, "crashed-primary") {
		t.Fatalf("after SIGKILL: state %s flags %v, want up and crashed-primary", v.State, v.Flags)
	}
	c, err = nbd.Dial(ctx, "tcp", hostport(t, n.uri("c"), "c"), "c", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(flushed))
	if err := c.ReadAt(ctx, got, 7<<20); err != nil || !bytes.Equal(got, flushed) {
		t.Fatalf("flushed data after SIGKILL and restart: %v", err)
	}
	c.Close()
	if err := n.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("exit status after SIGTERM: %v\n%s", err, n.log)
	}
	n.start()
	if v := n.volume("c"); slices.Contains(v.Flags, "crashed-primary") {
		t.Fatalf("after a clean SIGTERM restart the volume still says crashed-primary: %v", v.Flags)
	}
}

// TestDemo runs `replicad demo` as a user would and checks what it prints.
func TestDemo(t *testing.T) {
	nbdinfo := testenv.RequireTool(t, "nbdinfo", "libnbd-bin")
	for _, withDir := range []bool{false, true} {
		args := []string{"demo", "--port", "0", "--size", "64MiB"}
		dir := ""
		if withDir {
			dir = t.TempDir()
			args = append(args, "--dir", dir)
		}
		cmd := exec.Command(bin("replicad"), args...)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 100)
		go func() {
			s := bufio.NewScanner(stdout)
			for s.Scan() {
				lines <- s.Text()
			}
			close(lines)
		}()
		var uri, socket string
		var printed []string
		deadline := time.After(60 * time.Second)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("demo exited early; it printed:\n%s", strings.Join(printed, "\n"))
				}
				printed = append(printed, l)
				if strings.HasPrefix(l, "nbd://") {
					uri = l
				}
				if i := strings.Index(l, "repctl --socket "); i >= 0 {
					socket = strings.Fields(l[i:])[2]
				}
				if strings.HasPrefix(l, "Stop:") {
					break read
				}
			case <-deadline:
				cmd.Process.Kill()
				t.Fatalf("demo did not print its stop line within 60s:\n%s", strings.Join(printed, "\n"))
			}
		}
		if uri == "" || socket == "" {
			t.Fatalf("demo output lacks an nbd:// line or a repctl hint:\n%s", strings.Join(printed, "\n"))
		}
		run(t, nbdinfo, uri)
		out := run(t, bin("repctl"), "--socket", socket, "status")
		if !strings.Contains(out, "demo") || !strings.Contains(out, "UpToDate") {
			t.Fatalf("repctl status in the demo:\n%s", out)
		}
		cmd.Process.Signal(syscall.SIGINT)
		var rest []string
		for l := range lines {
			rest = append(rest, l)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("demo exit after SIGINT: %v", err)
		}
		if !slices.Contains(rest, "replicad demo stopped.") {
			t.Fatalf("demo did not say it stopped: %v", rest)
		}
		tmp := filepath.Dir(socket)
		if _, err := os.Stat(tmp); withDir == os.IsNotExist(err) {
			t.Fatalf("demo directory %s after exit: exists=%v, want %v", tmp, err == nil, withDir)
		}
	}
}
