package integration

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replicad/replicad/nbd"
)

// TestVerifyRepairsCorruption: a block changed on the secondary's disk
// behind replication's back is found by `repctl verify` (exactly one),
// resynced, and a second verify finds nothing.
func TestVerifyRepairsCorruption(t *testing.T) {
	nodes := newCluster(t, clusterSpec{Nodes: 2, Volume: "r0", Size: "128MiB", Protocol: "C"})
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		n.start()
		n.mustRepctl("create-md", "r0")
		n.mustRepctl("up", "r0")
	}
	a.mustRepctl("primary", "--force", "r0")
	a.waitSync("r0")
	ctx := context.Background()
	c, err := nbd.Dial(ctx, "tcp", hostport(t, a.uri("r0"), "r0"), "r0", nil)
	if err != nil {
		t.Fatal(err)
	}
	good := bytes.Repeat([]byte("good data "), 410)[:4096]
	if err := c.WriteAt(ctx, good, 7<<20, true); err != nil {
		t.Fatal(err)
	}
	c.Close()
	a.waitSync("r0")
	img, err := os.OpenFile(filepath.Join(b.dir, "r0.img"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.WriteAt(bytes.Repeat([]byte{0xba}, 4096), 7<<20); err != nil {
		t.Fatal(err)
	}
	img.Close()
	out, err := a.repctl("verify", "r0")
	if err == nil || !strings.Contains(out, "1 blocks differ") {
		t.Fatalf("verify of a corrupted secondary: err %v\n%s", err, out)
	}
	a.waitSync("r0")
	if out := a.mustRepctl("verify", "r0"); !strings.Contains(out, "0 blocks differ") {
		t.Fatalf("second verify:\n%s", out)
	}
	got := make([]byte, 4096)
	f, _ := os.Open(filepath.Join(b.dir, "r0.img"))
	f.ReadAt(got, 7<<20)
	f.Close()
	if !bytes.Equal(got, good) {
		t.Fatal("the corrupted block was not repaired on the secondary")
	}
}
