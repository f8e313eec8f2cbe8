package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/nbd"
	nbdwire "github.com/replicad/replicad/nbd/wire"
	"github.com/replicad/replicad/replication/meta"
	"github.com/replicad/replicad/replication/wire"
)

// TestCrashedPrimaryResyncsOnlyActivityLogExtents: "after a primary is
// killed (SIGKILL) and restarted, only its activity-log extents are
// resynced, not the volume". Two nodes, protocol C, 1 GiB. The primary
// writes blocks in a few extents (flushed, then unflushed writes still in
// flight at the kill) and is killed; the secondary stays secondary. The
// restarted node replays its activity log, which marks exactly the hot
// extents out of sync; with protocol C the survivor is the bitmap source
// (replication/uuid compare.go). The resync moves the hot extents at the
// kill, whole, and nothing more than their framing: far below the volume.
// Both copies end identical.
func TestCrashedPrimaryResyncsOnlyActivityLogExtents(t *testing.T) {
	const volume = "r0"
	a, b := startPair(t, clusterSpec{Volume: volume, Size: "1GiB", Protocol: "C"})
	extentSize := int64(meta.DefaultGeometry().ALExtentSize) // the config leaves al-extent-size at its default
	size := a.volume(volume).Size
	// Five extents spread over the volume; two blocks in each.
	extents := []int64{1, 37, 90, 150, 230}
	var blocks []int64
	for _, e := range extents {
		first := e * extentSize / blockSize
		blocks = append(blocks, first, first+extentSize/blockSize/2)
	}
	a.writeBlocks(volume, 'f', blocks...) // flushed
	bBefore := b.peer(volume)

	// Unflushed writes to the same blocks, in flight when the primary dies.
	c := a.dial(volume)
	var wg sync.WaitGroup
	wg.Add(1)
	wrote := make(chan error, 1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			blk := blocks[i%len(blocks)]
			err := c.WriteAt(context.Background(), block('u', blk), blk*blockSize, false)
			if i == len(blocks) || err != nil && i < len(blocks) {
				wrote <- err
			}
			if err != nil {
				return // the primary is gone
			}
		}
	}()
	if err := <-wrote; err != nil {
		t.Fatalf("unflushed write on the primary before the kill: %v", err)
	}
	active := int64(a.volume(volume).ALExtents)
	if active < int64(len(extents)) {
		t.Fatalf("the primary reports %d activity-log extents active after writing into %d extents", active, len(extents))
	}
	if active*extentSize >= size/8 {
		t.Fatalf("%d active extents of %d B cover an eighth of the %d B volume or more: a full resync would pass", active, extentSize, size)
	}
	a.stop(syscall.SIGKILL)
	wg.Wait()
	if v := b.volume(volume); v.Role != "Secondary" {
		t.Fatalf("the survivor is %s after the primary's death; nobody promoted it", v.Role)
	}

	a.start() // the volume comes up with the daemon, as Secondary
	waitMeshInSync(t, volume, a, b)
	aAfter, bAfter := a.peer(volume), b.peer(volume)
	// a's counters start at its restart; b's run on, so take b's difference.
	received := aAfter.ReceivedBytes["resync"]
	sentB := bAfter.SentBytes["resync"] - bBefore.SentBytes["resync"]
	// One ResyncData message carries at least one block.
	limit := active*extentSize + active*extentSize/blockSize*int64(wire.HeaderSize+wire.ResyncFixed)
	t.Logf("%d activity-log extents active at the kill; resync: b sent %d B, a received %d B, a sent %d B; limit %d B; volume %d B",
		active, sentB, received, aAfter.SentBytes["resync"], limit, size)
	if received <= 0 {
		t.Fatalf("the restarted primary received %d resync bytes: its activity-log extents were not resynced", received)
	}
	// The replay marks whole extents, so all of each hot one comes back.
	if received < active*extentSize {
		t.Fatalf("the restarted primary received %d resync bytes, less than its %d active extents of %d B each", received, active, extentSize)
	}
	if received > limit {
		t.Fatalf("the restarted primary received %d resync bytes, more than its %d active extents of %d B each plus framing (%d B); volume %d B",
			received, active, extentSize, limit, size)
	}
	if sentB != received {
		t.Errorf("the survivor sent %d resync bytes, the restarted node received %d", sentB, received)
	}
	if s := aAfter.SentBytes["resync"]; s != 0 {
		t.Errorf("the crashed primary sent %d resync bytes; with protocol C the survivor is the source", s)
	}
	sameData(t, volume, a, b)
}

// TestSecondaryExportRefusesWrites: a secondary's NBD export is read-only
// (docs/replication.md, Roles): it advertises the read-only flag, answers
// WRITE, WRITE_ZEROES and TRIM with EPERM, and the data on both nodes is
// what the primary wrote.
func TestSecondaryExportRefusesWrites(t *testing.T) {
	const volume = "r0"
	a, b := startPair(t, clusterSpec{Volume: volume, Size: "64MiB", Protocol: "C"})
	const blk = 100
	a.writeBlocks(volume, 'p', blk)
	a.waitSync(volume)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := nbd.Dial(ctx, "tcp", hostport(t, b.uri(volume), volume), volume, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Flags()&nbdwire.TFlagReadOnly == 0 {
		t.Errorf("the secondary's export flags %#x lack read-only", c.Flags())
	}
	for _, op := range []struct {
		name string
		do   func() error
	}{
		{"write", func() error { return c.WriteAt(ctx, block('s', blk), blk*blockSize, false) }},
		{"write-zeroes", func() error { return c.WriteZeroes(ctx, blk*blockSize, blockSize, false, false) }},
		{"trim", func() error { return c.Trim(ctx, blk*blockSize, blockSize, false) }},
	} {
		err := op.do()
		var re *nbd.RemoteError
		if !errors.As(err, &re) || re.Errno != nbdwire.EPERM {
			t.Errorf("%s on the secondary's export: %v, want EPERM", op.name, err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Errorf("flush on the secondary's export: %v", err)
	}
	got := make([]byte, blockSize)
	if err := c.ReadAt(ctx, got, blk*blockSize); err != nil {
		t.Fatalf("read on the secondary's export: %v", err)
	}
	if !bytes.Equal(got, block('p', blk)) {
		t.Errorf("block %d on the secondary holds %x… after refused writes, want the primary's 'p'", blk, got[:16])
	}
	if tag := a.tagOf(volume, blk); tag != 'p' {
		t.Errorf("block %d on the primary holds %q, want 'p'", blk, tag)
	}
	if p := a.peer(volume); p.OutOfSyncBytes != 0 || p.Connection != "Connected" {
		t.Errorf("after refused writes on the secondary the primary sees it %s with %d bytes out of sync", p.Connection, p.OutOfSyncBytes)
	}
}

// TestStatusJSONFieldNames pins the field names and JSON types of `repctl
// --json status` that scripts read, for a connected pair and for a volume
// that is down (DRBD's detached resource: Secondary, Diskless).
func TestStatusJSONFieldNames(t *testing.T) {
	const volume = "r0"
	a, b := startPair(t, clusterSpec{Volume: volume, Size: "64MiB", Protocol: "C"})

	v := rawVolume(t, a, volume)
	wantString(t, "volumes[].", v, "name", volume)
	wantString(t, "volumes[].", v, "role", "Primary")
	wantString(t, "volumes[].", v, "disk", "UpToDate")
	peers, ok := v["peers"].([]any)
	if !ok || len(peers) != 1 {
		t.Fatalf("volumes[].peers is %T %v, want an array of one peer", v["peers"], v["peers"])
	}
	p, ok := peers[0].(map[string]any)
	if !ok {
		t.Fatalf("volumes[].peers[0] is %T, want an object", peers[0])
	}
	wantString(t, "volumes[].peers[].", p, "node", "n1")
	wantString(t, "volumes[].peers[].", p, "connection", "Connected")
	wantString(t, "volumes[].peers[].", p, "replication", "Established")
	wantString(t, "volumes[].peers[].", p, "disk", "UpToDate")
	if oos, ok := p["out_of_sync_bytes"].(float64); !ok || oos != 0 {
		t.Errorf("volumes[].peers[].out_of_sync_bytes is %T %v, want the number 0", p["out_of_sync_bytes"], p["out_of_sync_bytes"])
	}

	b.mustRepctl("down", volume)
	v = rawVolume(t, b, volume)
	wantString(t, "down: volumes[].", v, "name", volume)
	wantString(t, "down: volumes[].", v, "state", control.StateDown)
	wantString(t, "down: volumes[].", v, "role", "Secondary")
	wantString(t, "down: volumes[].", v, "disk", "Diskless")
	if peers, ok := v["peers"].([]any); !ok {
		t.Errorf("down: volumes[].peers is %T %v, want an array", v["peers"], v["peers"])
	} else if len(peers) != 0 {
		t.Errorf("down: volumes[].peers has %d entries, want none", len(peers))
	}
}

// rawVolume runs `repctl --json status` and returns the volume's object as
// decoded into plain maps, so that renamed fields show.
func rawVolume(t *testing.T, n *node, volume string) map[string]any {
	t.Helper()
	var st map[string]any
	out := n.mustRepctl("--json", "status")
	jsonUnmarshal(t, out, &st)
	vols, ok := st["volumes"].([]any)
	if !ok {
		t.Fatalf("status has no volumes array:\n%s", out)
	}
	for _, v := range vols {
		if m, ok := v.(map[string]any); ok && m["name"] == volume {
			return m
		}
	}
	t.Fatalf("status lists no volume with name %q:\n%s", volume, out)
	return nil
}

// wantString checks that obj[key] is a JSON string equal to want.
func wantString(t *testing.T, where string, obj map[string]any, key, want string) {
	t.Helper()
	if got, ok := obj[key].(string); !ok || got != want {
		t.Errorf("%s%s is %T %v, want the string %q", where, key, obj[key], fmtJSON(obj[key]), want)
	}
}

func fmtJSON(v any) string {
	if v == nil {
		return "(absent)"
	}
	return fmt.Sprint(v)
}
