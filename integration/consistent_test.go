package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/replicad/replicad/internal/control"
)

// TestRestartWithFencingIsConsistent: with fencing resource-only, a node
// restarted while its peer is down comes back Consistent (its data was
// UpToDate, but the peer may have been promoted since), as DRBD reports
// it. Promoting it runs the fence-peer handler first and makes the data
// UpToDate. The other node, restarted alone in turn, is Consistent too;
// once the first is back (UpToDate: it knows its peer is fenced) the
// handshake settles it as a sync target of the newer data.
func TestRestartWithFencingIsConsistent(t *testing.T) {
	handler := filepath.Join(t.TempDir(), "fence-peer")
	// Exit 7: the peer was fenced (powered off), which settles it.
	if err := os.WriteFile(handler, []byte("#!/bin/sh\necho \"fenced $DRBD_PEERS\" >&2\nexit 7\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	nodes := newCluster(t, clusterSpec{Nodes: 2, Volume: "r0", Size: "16MiB", Protocol: "C",
		Extra: "      fencing: resource-only\n      fence-peer-handler: " + handler + "\n"})
	a, b := nodes[0], nodes[1]
	t.Cleanup(func() { dumpLogsOnFailure(t, a, b) })
	upPair(a, b, "r0")

	// down and up on the secondary, followed on the event stream: the
	// daemon's Attaching comes first, then the state attach found, then
	// what the handshake made of it (the peer is up: UpToDate again).
	ev := b.events("--volume", "r0")
	b.mustRepctl("down", "r0")
	b.mustRepctl("up", "r0")
	b.waitVolume("r0", "b in sync again", inSync)
	var disks []string
	for _, e := range ev.all() {
		if e.What == "disk" {
			disks = append(disks, e.Old+" -> "+e.New)
		}
	}
	if want := []string{"UpToDate -> Diskless", "Diskless -> Attaching", "Attaching -> Consistent", "Consistent -> UpToDate"}; !slices.Equal(disks, want) {
		t.Fatalf("b's disk events %q, want %q", disks, want)
	}

	a.mustRepctl("secondary", "r0")
	for _, n := range []*node{a, b} {
		if err := n.stop(syscall.SIGTERM); err != nil {
			t.Fatalf("%s: %v", n.name(), err)
		}
	}

	b.start()
	v := b.waitVolume("r0", "b up", func(v control.Volume) bool { return v.State == control.StateUp })
	if v.Disk != "Consistent" || !strings.Contains(v.Hint, "fence-peer") {
		t.Fatalf("b restarted alone with fencing: disk %s (hint %q), want Consistent with a hint", v.Disk, v.Hint)
	}
	if out := b.mustRepctl("primary", "r0"); !strings.Contains(out, "Primary") {
		t.Fatalf("repctl primary: %s", out)
	}
	if v := b.volume("r0"); v.Disk != "UpToDate" || v.Role != "Primary" {
		t.Fatalf("b promoted after fencing its peer: %s %s, want Primary UpToDate", v.Role, v.Disk)
	}
	if p := b.peer("r0"); !p.Outdated {
		t.Fatalf("b's peer after fence-peer exit 7: %+v, want outdated", p)
	}
	b.writeBlocks("r0", 0x5a, 3, 7)

	b.mustRepctl("secondary", "r0")
	if err := b.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: %v", b.name(), err)
	}

	// a, alone, does not know b moved on: Consistent. b knows a is
	// outdated (fenced), so it comes back UpToDate.
	a.start()
	if v := a.waitVolume("r0", "a up", func(v control.Volume) bool { return v.State == control.StateUp }); v.Disk != "Consistent" {
		t.Fatalf("a restarted alone with fencing: disk %s, want Consistent", v.Disk)
	}
	b.start()
	if v := b.waitVolume("r0", "b up", func(v control.Volume) bool { return v.State == control.StateUp }); v.Disk != "UpToDate" {
		t.Fatalf("b restarted with its peer fenced: disk %s, want UpToDate", v.Disk)
	}
	a.waitVolume("r0", "a in sync with b, which holds newer data", inSync)
	if got := a.tagOf("r0", 7); got != 0x5a {
		t.Fatalf("a after the handshake: block 7 tagged %#x, want 0x5a (b's newer data)", got)
	}
}
