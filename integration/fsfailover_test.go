package integration

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/replicad/replicad/internal/testenv"
)

// TestExt4Failover: ext4 on the primary through nbdfuse and a loop device;
// files written and synced; the primary is killed with SIGKILL while the
// filesystem is mounted. The other node is promoted and mounts it: the
// journal replays, every synced file is there, and fsck is clean.
func TestExt4Failover(t *testing.T) {
	testenv.RequireRoot(t)
	mkfs := testenv.RequireTool(t, "mkfs.ext4", "e2fsprogs")
	fsck := testenv.RequireTool(t, "fsck.ext4", "e2fsprogs")
	testenv.RequireTool(t, "fusermount3", "fuse3")
	nodes := newCluster(t, clusterSpec{Nodes: 2, Volume: "r0", Size: "256MiB", Protocol: "C"})
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		n.start()
		n.mustRepctl("create-md", "r0")
		n.mustRepctl("up", "r0")
	}
	a.mustRepctl("primary", "--force", "r0")
	a.waitSync("r0")

	files := map[string][]byte{}
	for i := 0; i < 24; i++ {
		files[fmt.Sprintf("d%d/f%d", i%3, i)] = bytes.Repeat([]byte(fmt.Sprintf("replicated file %d\n", i)), 2000*(i+1))
	}
	mntA := t.TempDir()
	loopA := fuseAttach(t, a.uri("r0"))
	run(t, mkfs, "-q", "-F", loopA)
	run(t, "mount", loopA, mntA)
	// The mount on the dead primary can only be detached lazily.
	t.Cleanup(func() { exec.Command("umount", "-l", mntA).Run() })
	for name, data := range files {
		p := filepath.Join(mntA, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "sync", "-f", mntA)
	// Unsynced writes in flight at the kill, to make the journal work.
	os.WriteFile(filepath.Join(mntA, "unsynced"), bytes.Repeat([]byte("x"), 1<<20), 0o644)
	a.stop(syscall.SIGKILL)

	b.mustRepctl("primary", "r0")
	loopB := fuseAttach(t, b.uri("r0"))
	mntB := t.TempDir()
	run(t, "mount", loopB, mntB)
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(mntB, name))
		if err != nil {
			t.Fatalf("after failover: %v", err)
		}
		if sha256.Sum256(got) != sha256.Sum256(want) {
			t.Fatalf("after failover %s has different contents", name)
		}
	}
	run(t, "umount", mntB)
	if out, err := exec.Command(fsck, "-f", "-n", loopB).CombinedOutput(); err != nil {
		t.Fatalf("fsck.ext4 -f -n after failover: %v\n%s", err, out)
	}
}
