package integration

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/testenv"
)

// fuseAttach exposes an export as a file with nbdfuse and attaches it to a
// loop device, the way to get a block device without the nbd module. It
// returns the loop device; cleanup detaches and stops nbdfuse (by its PID).
func fuseAttach(t *testing.T, uri string) string {
	t.Helper()
	nbdfuse := testenv.RequireTool(t, "nbdfuse", "libnbd-bin")
	losetup := testenv.RequireTool(t, "losetup", "util-linux")
	mnt := t.TempDir()
	file := filepath.Join(mnt, "disk")
	cmd := exec.Command(nbdfuse, file, uri)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := os.Stat(file); err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("nbdfuse did not expose %s: %s", file, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	loop := strings.TrimSpace(run(t, losetup, "--direct-io=off", "-f", "--show", file))
	t.Cleanup(func() {
		exec.Command(losetup, "-d", loop).Run()
		exec.Command("fusermount3", "-u", mnt).Run()
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	return loop
}

// TestExt4OnVolume: a real filesystem on a replicad volume, through nbdfuse
// and a loop device: mkfs.ext4, write files, unmount, restart replicad,
// remount, files intact, fsck clean.
func TestExt4OnVolume(t *testing.T) {
	testenv.RequireRoot(t)
	mkfs := testenv.RequireTool(t, "mkfs.ext4", "e2fsprogs")
	fsck := testenv.RequireTool(t, "fsck.ext4", "e2fsprogs")
	testenv.RequireTool(t, "fusermount3", "fuse3")
	n := newNode(t, volumeSpec{Name: "fs", Size: "256MiB"})
	n.start()
	n.create("fs")

	files := map[string][]byte{}
	for i := 0; i < 20; i++ {
		b := bytes.Repeat([]byte(fmt.Sprintf("file %d of replicad's ext4 test\n", i)), 1000*(i+1))
		files[fmt.Sprintf("dir%d/file%d", i%4, i)] = b
	}
	mnt := t.TempDir()
	func() {
		loop := fuseAttach(t, n.uri("fs"))
		run(t, mkfs, "-q", "-F", loop)
		run(t, "mount", loop, mnt)
		defer exec.Command("umount", mnt).Run()
		for name, b := range files {
			p := filepath.Join(mnt, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		run(t, "sync", "-f", mnt)
		run(t, "umount", mnt)
	}()
	// Restart the daemon cleanly; the data must come back.
	if err := n.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("replicad exit after SIGTERM: %v\n%s", err, n.log)
	}
	n.start()
	if v := n.volume("fs"); v.State != "up" {
		t.Fatalf("volume after restart: %+v", v)
	}
	loop := fuseAttach(t, n.uri("fs"))
	run(t, "mount", loop, mnt)
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(got) != sha256.Sum256(want) {
			t.Fatalf("%s changed across unmount and daemon restart", name)
		}
	}
	run(t, "umount", mnt)
	out, err := exec.Command(fsck, "-f", "-n", loop).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.ext4 -f -n reports problems: %v\n%s", err, out)
	}
}

// TestKernelAttach uses the kernel's NBD client where the nbd module exists.
func TestKernelAttach(t *testing.T) {
	testenv.RequireRoot(t)
	nbdClient := testenv.RequireTool(t, "nbd-client", "nbd-client")
	mkfs := testenv.RequireTool(t, "mkfs.ext4", "e2fsprogs")
	if _, err := os.Stat("/sys/module/nbd"); err != nil {
		if out, err := exec.Command("modprobe", "nbd").CombinedOutput(); err != nil {
			t.Skipf("skipping: this kernel has no nbd module (modprobe nbd: %s); the nbdfuse path covers mounting here", strings.TrimSpace(string(out)))
		}
	}
	dev := ""
	for i := 0; i < 16; i++ {
		d := fmt.Sprintf("/dev/nbd%d", i)
		if b, err := os.ReadFile(fmt.Sprintf("/sys/block/nbd%d/size", i)); err == nil && strings.TrimSpace(string(b)) == "0" {
			dev = d
			break
		}
	}
	if dev == "" {
		t.Skip("skipping: no free /dev/nbdX")
	}
	n := newNode(t, volumeSpec{Name: "k", Size: "128MiB"})
	n.start()
	n.create("k")
	uri := n.uri("k") // nbd://127.0.0.1:PORT/k
	hostport := strings.TrimSuffix(strings.TrimPrefix(uri, "nbd://"), "/k")
	host, port, _ := strings.Cut(hostport, ":")
	run(t, nbdClient, host, port, dev, "-N", "k", "-C", "2", "-t", "30")
	t.Cleanup(func() { exec.Command(nbdClient, "-d", dev).Run() })
	run(t, mkfs, "-q", "-F", dev)
	mnt := t.TempDir()
	run(t, "mount", dev, mnt)
	if err := os.WriteFile(filepath.Join(mnt, "hello"), []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "umount", mnt)
	if c := n.volume("k").Connections; c != 2 {
		t.Errorf("kernel client with -C 2 holds %d connections", c)
	}
}
