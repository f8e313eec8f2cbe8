package integration

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replicad/replicad/internal/testenv"
)

// nbdinfo --json reports the size and the flags the issue requires.
func TestNBDInfoReportsFlags(t *testing.T) {
	nbdinfo := testenv.RequireTool(t, "nbdinfo", "libnbd-bin")
	n := newNode(t, volumeSpec{Name: "rw", Size: "64MiB"}, volumeSpec{Name: "ro", Size: "16MiB", ReadOnly: true})
	n.start()
	n.create("rw", "ro")
	var info struct {
		Protocol string `json:"protocol"`
		Exports  []struct {
			Name     string `json:"export-name"`
			Size     int64  `json:"export-size"`
			ReadOnly bool   `json:"is_read_only"`
			Flush    bool   `json:"can_flush"`
			FUA      bool   `json:"can_fua"`
			Trim     bool   `json:"can_trim"`
			Zero     bool   `json:"can_zero"`
			Multi    bool   `json:"can_multi_conn"`
			MinBlock int64  `json:"block_size_minimum"`
			PrefBlk  int64  `json:"block_size_preferred"`
			MaxBlock int64  `json:"block_size_maximum"`
		} `json:"exports"`
	}
	jsonUnmarshal(t, run(t, nbdinfo, "--json", n.uri("rw")), &info)
	e := info.Exports[0]
	if info.Protocol != "newstyle-fixed" || e.Name != "rw" || e.Size != n.volume("rw").Size {
		t.Fatalf("nbdinfo: %+v (volume size %d)", info, n.volume("rw").Size)
	}
	if e.ReadOnly || !e.Flush || !e.FUA || !e.Trim || !e.Zero || !e.Multi {
		t.Fatalf("flags: %+v", e)
	}
	if e.MinBlock != 1 || e.PrefBlk != 4096 || e.MaxBlock != 32<<20 {
		t.Fatalf("block sizes: %+v", e)
	}
	jsonUnmarshal(t, run(t, nbdinfo, "--json", n.unixURI("ro")), &info)
	if e := info.Exports[0]; !e.ReadOnly || !e.Flush {
		t.Fatalf("read-only export over the unix socket: %+v", e)
	}
	// --list over the same server shows both exports.
	list := run(t, nbdinfo, "--list", "--json", strings.TrimSuffix(n.uri("rw"), "rw"))
	if !strings.Contains(list, `"export-name": "rw"`) || !strings.Contains(list, `"export-name": "ro"`) {
		t.Fatalf("nbdinfo --list: %s", list)
	}
}

// nbdcopy writes 256 MiB of random data in and reads back identical bytes.
func TestNBDCopyRoundTrip(t *testing.T) {
	nbdcopy := testenv.RequireTool(t, "nbdcopy", "libnbd-bin")
	n := newNode(t, volumeSpec{Name: "big", Size: "300MiB"})
	n.start()
	n.create("big")
	dir := t.TempDir()
	src, back := filepath.Join(dir, "src"), filepath.Join(dir, "back")
	data := make([]byte, 256<<20)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	uri := n.uri("big")
	run(t, nbdcopy, "--flush", src, uri)
	// Read the whole export back through a new set of connections.
	run(t, nbdcopy, uri, back)
	got, err := os.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != n.volume("big").Size || !bytes.Equal(got[:len(data)], data) {
		t.Fatal("nbdcopy read back different bytes than it wrote")
	}
}

// qemu-io write, read, discard and zero patterns, verified by qemu-io itself.
func TestQemuIOPatterns(t *testing.T) {
	qemuIO := testenv.RequireTool(t, "qemu-io", "qemu-utils")
	n := newNode(t, volumeSpec{Name: "q", Size: "64MiB"})
	n.start()
	n.create("q")
	uri := n.uri("q")
	out := run(t, qemuIO, "-f", "raw",
		"-c", "write -P 0xab 0 1M",
		"-c", "write -P 0xcd 1M 64k",
		"-c", "write -P 0x11 -f 3M 4k", // FUA
		"-c", "write -z 2M 512k",
		"-c", "discard 5M 1M",
		"-c", "flush",
		uri)
	if strings.Contains(out, "error") || strings.Contains(out, "failed") {
		t.Fatalf("qemu-io writes: %s", out)
	}
	out = run(t, qemuIO, "-f", "raw", "-r",
		"-c", "read -P 0xab 0 1M",
		"-c", "read -P 0xcd 1M 64k",
		"-c", "read -P 0x11 3M 4k",
		"-c", "read -P 0 2M 512k",
		"-c", "read -P 0 5M 1M",
		"-c", "read -P 0 10M 1M",
		uri)
	if strings.Contains(out, "Pattern verification failed") || strings.Contains(out, "error") {
		t.Fatalf("qemu-io verification: %s", out)
	}
	if c := strings.Count(out, "read "); c != 6 {
		t.Fatalf("expected 6 verified reads, got %d:\n%s", c, out)
	}
	// Writing past the end is refused with an error, not a dropped server.
	out, _ = runAllowFail(qemuIO, "-f", "raw", "-c", "write 64M 4k", uri)
	if !strings.Contains(out, "No space left") && !strings.Contains(out, "Input/output") && !strings.Contains(out, "out of bounds") && !strings.Contains(out, "Invalid argument") {
		t.Logf("qemu-io past the end said: %s", out)
	}
	if _, err := n.status(); err != nil {
		t.Fatalf("daemon after an out-of-range write: %v", err)
	}
}

// fio with the nbd engine: random writes with crc32c verification, queue
// depth 32 on each of 4 connections (4 jobs, each its own region).
func TestFioVerify(t *testing.T) {
	fio := testenv.RequireTool(t, "fio", "fio")
	n := newNode(t, volumeSpec{Name: "f", Size: "512MiB"})
	n.start()
	n.create("f")
	out := run(t, fio, "--name=verify", "--ioengine=nbd", "--uri="+n.uri("f"),
		"--rw=randwrite", "--bs=4k", "--iodepth=32", "--numjobs=4",
		"--size=64M", "--offset_increment=64M", "--verify=crc32c", "--do_verify=1",
		"--verify_fatal=1", "--verify_state_save=0", "--group_reporting", "--output-format=json")
	if !strings.Contains(out, `"error" : 0`) {
		t.Fatalf("fio reported an error:\n%s", out)
	}
	if v := n.volume("f"); v.DiskError != "" {
		t.Fatalf("disk error after fio: %s", v.DiskError)
	}
}

func runAllowFail(name string, args ...string) (string, error) {
	out, err := execCommand(name, args...).CombinedOutput()
	return string(out), err
}
