package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/dlm/client"
	"github.com/replicad/replicad/dlm/engine"
	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/nbd"
)

// dlmTimers makes failures noticed within a second.
const dlmTimers = "  heartbeat-interval: 100ms\n  dead-timeout: 1s\n"

// waitFor polls cond (the deadline only guards against hanging).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *node) dlmInfo() control.DLM {
	n.t.Helper()
	var info control.DLM
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := control.NewClient(n.socket).Do(ctx, http.MethodGet, "/v1/dlm", nil, &info); err != nil {
		n.t.Fatal(err)
	}
	return info
}

func (n *node) lockspace(name string) engine.Status {
	for _, s := range n.dlmInfo().Lockspaces {
		if s.Lockspace == name {
			return s
		}
	}
	n.t.Fatalf("lockspace %s not joined", name)
	return engine.Status{}
}

// dump is `repctl lock dump --json`.
func (n *node) dump(ls string) engine.Dump {
	n.t.Helper()
	var d engine.Dump
	jsonUnmarshal(n.t, n.mustRepctl("lock", "dump", ls, "--json"), &d)
	return d
}

func resource(d engine.Dump, name string) (engine.ResourceDump, bool) {
	for _, r := range d.Resources {
		if r.Name == name {
			return r, true
		}
	}
	return engine.ResourceDump{}, false
}

// bgRepctl is a repctl process running in the background.
type bgRepctl struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
}

func (n *node) startRepctl(args ...string) *bgRepctl {
	n.t.Helper()
	b := &bgRepctl{done: make(chan error, 1)}
	b.cmd = exec.Command(bin("repctl"), append([]string{"--socket", n.socket}, args...)...)
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.out
	if err := b.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	n.t.Cleanup(func() { b.cmd.Process.Kill() })
	return b
}

func (b *bgRepctl) exited() bool {
	select {
	case err := <-b.done:
		b.done <- err
		return true
	default:
		return false
	}
}

func (b *bgRepctl) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case err := <-b.done:
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, b.out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not finish\n%s", what, b.out.String())
	}
}

// grantedIDs maps the node of every granted lock on a resource to its id.
func grantedIDs(r engine.ResourceDump) map[engine.NodeID]string {
	m := map[engine.NodeID]string{}
	for _, l := range r.Granted {
		m[l.Node] = l.ID + " " + l.Mode
	}
	return m
}

// Issue 4's integration test with three replicad processes: kill the
// master of busy resources with SIGKILL; the survivors' locks stay
// granted (same ids, same modes) through recovery; requests that waited
// for the dead node's locks are granted only after its fence is
// confirmed. Then: a `repctl lock run` killed with SIGKILL releases its
// lock and its command dies with it.
func TestDLMKilledMasterWaitsForFenceConfirmation(t *testing.T) {
	nodes := newCluster(t, clusterSpec{Nodes: 3, DLM: dlmTimers + "  lockspaces: [{name: ls}]\n"})
	for _, n := range nodes {
		n.start()
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	waitFor(t, "lockspace ls running on every node", func() bool {
		for _, n := range nodes {
			if st := n.lockspace("ls"); st.State != engine.StateRunning || len(st.Members) != 3 {
				return false
			}
		}
		return true
	})
	take := func(n *node, res, mode string) {
		n.mustRepctl("lock", "take", "--lockspace", "ls", "--resource", res, "--mode", mode)
	}
	// The first user of a resource masters it: a masters both.
	take(a, "busy", "EX")
	take(a, "shared", "PR")
	take(b, "shared", "PR")
	take(c, "shared", "CR")
	// Two requests wait for a's EX on busy, each a lock run that releases
	// when its command ends (so their grant order does not matter).
	marker := filepath.Join(t.TempDir(), "ran")
	runC := c.startRepctl("lock", "run", "--lockspace", "ls", "--resource", "busy", "--mode", "EX", "--", "sh", "-c", "echo c >> "+marker)
	runB := b.startRepctl("lock", "run", "--lockspace", "ls", "--resource", "busy", "--mode", "PR", "--", "sh", "-c", "echo b >> "+marker)
	waitFor(t, "both requests queued on busy's master", func() bool {
		r, ok := resource(a.dump("ls"), "busy")
		return ok && r.MasterCopy && len(r.Waiting) == 2
	})
	r, _ := resource(a.dump("ls"), "shared")
	before := grantedIDs(r)
	if !r.MasterCopy || len(before) != 3 {
		t.Fatalf("shared on its master before the kill: %+v", r)
	}
	gen := b.lockspace("ls").Generation

	a.stop(syscall.SIGKILL)
	for _, n := range []*node{b, c} {
		waitFor(t, n.dir+": wait fencing for n0", func() bool {
			st := n.lockspace("ls")
			return st.State == engine.StateWaitFencing && len(st.NeedFence) == 1 && st.NeedFence[0] == 1
		})
	}
	if out := b.mustRepctl("lock", "ls"); !strings.Contains(out, "needs fencing") || !strings.Contains(out, "wait fencing") {
		t.Fatalf("repctl lock ls does not show what recovery waits for:\n%s", out)
	}
	if _, err := os.Stat(marker); err == nil || runC.exited() || runB.exited() {
		t.Fatalf("a request waiting for the dead node's lock ran before its fence was confirmed:\n%s\n%s", runC.out.String(), runB.out.String())
	}
	// Survivors' own copies of their locks on the dead master's resource.
	for _, n := range []*node{b, c} {
		r, ok := resource(n.dump("ls"), "shared")
		id := engine.NodeID(n.dlmInfo().NodeID)
		if !ok || len(r.Granted) != 1 || r.Granted[0].ID+" "+r.Granted[0].Mode != before[id] {
			t.Fatalf("%s's lock on shared while waiting for the fence: %+v, before %q", n.dir, r, before[id])
		}
	}

	out := c.mustRepctl("lock", "fence-confirm", "n0", "--yes")
	if !strings.Contains(out, "n0 (node id 1) confirmed fenced") {
		t.Fatalf("fence-confirm: %s", out)
	}
	runC.wait(t, "lock run on c after the fence")
	runB.wait(t, "lock run on b after the fence")
	if got, _ := os.ReadFile(marker); string(got) != "b\nc\n" && string(got) != "c\nb\n" {
		t.Fatalf("the commands under the lock wrote %q", got)
	}
	for _, n := range []*node{b, c} {
		waitFor(t, n.dir+": running again", func() bool {
			st := n.lockspace("ls")
			return st.State == engine.StateRunning && st.Generation > gen && len(st.Members) == 2
		})
	}
	// shared was remastered on a survivor with the survivors' locks as
	// they were; the dead node's lock is gone.
	var after map[engine.NodeID]string
	for _, n := range []*node{b, c} {
		if r, ok := resource(n.dump("ls"), "shared"); ok && r.MasterCopy {
			after = grantedIDs(r)
		}
	}
	if len(after) != 2 || after[2] != before[2] || after[3] != before[3] {
		t.Fatalf("shared after recovery: %v; before %v", after, before)
	}

	// repctl lock run killed with SIGKILL: the DLM releases its lock and
	// the kernel kills its command.
	pidFile := filepath.Join(t.TempDir(), "pid")
	held := b.startRepctl("lock", "run", "--lockspace", "ls", "--resource", "solo", "--mode", "EX", "--",
		"sh", "-c", "echo $$ > "+pidFile+"; exec sleep 600")
	var pid int
	waitFor(t, "the command under lock run started", func() bool {
		s, err := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(s)))
		return err == nil && pid > 0
	})
	if _, err := c.repctl("lock", "run", "--lockspace", "ls", "--resource", "solo", "--mode", "PR", "--noqueue", "true"); err == nil {
		t.Fatal("lock run --noqueue got PR while another lock run held EX")
	}
	held.cmd.Process.Kill()
	waitFor(t, "the lock of the killed repctl released", func() bool {
		_, err := c.repctl("lock", "run", "--lockspace", "ls", "--resource", "solo", "--mode", "EX", "--noqueue", "true")
		return err == nil
	})
	waitFor(t, "the command of the killed repctl gone", func() bool { return processGone(pid) })
}

// processGone: no process pid, or only its zombie (whoever inherited it
// may not reap it).
func processGone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, after, _ := strings.Cut(string(stat), ") ")
	return strings.HasPrefix(after, "Z")
}

// Issue 4's shared-disk acceptance: two nodes, one dual-primary volume
// (protocol C). A small client on each node repeatedly takes EX on one
// resource, reads a counter block from its own node's export, checks it
// against the LVB the previous holder left, increments it, writes and
// flushes it, puts the value in the LVB and releases EX (down to NL, which
// keeps the LVB alive). After N rounds on
// each node, concurrently, the counter on both disks is 2N and matches the
// LVB: the DLM serialized the writers and replication made each write
// visible on the other node before its lock was released.
func TestDLMSharedDiskCounter(t *testing.T) {
	const rounds = 100
	nodes := newCluster(t, clusterSpec{Nodes: 2, Volume: "r0", Size: "64MiB", Protocol: "C",
		Extra: "      allow-two-primaries: true\n",
		DLM:   dlmTimers + "  two-node: true\n  lockspaces: [{name: shared, lvb-len: 32}]\n"})
	for _, n := range nodes {
		n.start()
		n.mustRepctl("create-md", "r0")
	}
	for _, n := range nodes {
		n.mustRepctl("up", "r0")
	}
	nodes[0].mustRepctl("primary", "--force", "r0")
	nodes[0].waitSync("r0")
	nodes[1].mustRepctl("primary", "r0")
	for _, n := range nodes {
		if v := n.volume("r0"); v.Role != "Primary" {
			t.Fatalf("%s: r0 is %s, want Primary (dual primary)", n.dir, v.Role)
		}
		waitFor(t, "lockspace shared running", func() bool { return n.lockspace("shared").State == engine.StateRunning })
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	type result struct {
		lk  *client.Lock
		err error
	}
	results := make([]chan result, len(nodes))
	for i, n := range nodes {
		results[i] = make(chan result, 1)
		go func() {
			lk, err := counterRounds(ctx, n, i, rounds)
			results[i] <- result{lk, err}
		}()
	}
	var held []*client.Lock
	for i := range nodes {
		r := <-results[i]
		if r.err != nil {
			t.Fatal(r.err)
		}
		held = append(held, r.lk)
	}

	for i, n := range nodes {
		cl, err := nbd.Dial(ctx, "tcp", hostport(t, n.uri("r0"), "r0"), "r0", nil)
		if err != nil {
			t.Fatal(err)
		}
		blk := make([]byte, 4096)
		if err := cl.ReadAt(ctx, blk, 0); err != nil {
			t.Fatal(err)
		}
		cl.Close()
		if got := binary.LittleEndian.Uint64(blk); got != 2*rounds {
			t.Errorf("%s: counter on disk %d, want %d", n.dir, got, 2*rounds)
		}
		// The NL locks are still held, so the resource and its LVB are.
		comp, err := held[i].Convert(ctx, locktable.PR, locktable.ValBlk, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := lvbCounter(comp.LVB); got != 2*rounds {
			t.Errorf("%s: LVB %d, want %d", n.dir, got, 2*rounds)
		}
	}
}

func lvbCounter(lvb []byte) uint64 {
	if len(lvb) < 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(lvb)
}

// counterRounds is the small program of the acceptance test, on node n.
// It returns its NL lock on the counter, still held (its connection closes
// with the test).
func counterRounds(ctx context.Context, n *node, id, rounds int) (*client.Lock, error) {
	addr := strings.TrimSuffix(strings.TrimPrefix(n.uri("r0"), "nbd://"), "/r0")
	cl, err := nbd.Dial(ctx, "tcp", addr, "r0", nil)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	dc, err := client.Dial(ctx, n.dlmSocket())
	if err != nil {
		return nil, err
	}
	n.t.Cleanup(func() { dc.Close() })
	// An NL lock keeps the resource, and with it the LVB, alive between
	// rounds (the LVB goes with the last lock, as in the kernel): the
	// rounds convert it NL -> EX and back, as GFS2 and OCFS2 do.
	l, _, err := dc.Lock(ctx, "shared", "counter", locktable.NL, locktable.ValBlk, nil)
	if err != nil {
		return nil, fmt.Errorf("node %d: NL lock: %w", id, err)
	}
	blk := make([]byte, 4096)
	for i := 0; i < rounds; i++ {
		comp, err := l.Convert(ctx, locktable.EX, locktable.ValBlk, nil)
		if err != nil {
			return nil, fmt.Errorf("node %d round %d: convert to EX: %w", id, i, err)
		}
		if err := cl.ReadAt(ctx, blk, 0); err != nil {
			return nil, fmt.Errorf("node %d round %d: read: %w", id, i, err)
		}
		v := binary.LittleEndian.Uint64(blk)
		if lv := lvbCounter(comp.LVB); lv != v {
			return nil, fmt.Errorf("node %d round %d: the disk says %d but the LVB the last holder left says %d (LVB seq %d): "+
				"a write made under the lock on the other node is not visible here", id, i, v, lv, comp.LVBSeq)
		}
		v++
		binary.LittleEndian.PutUint64(blk, v)
		binary.LittleEndian.PutUint64(blk[8:], uint64(id))
		if err := cl.WriteAt(ctx, blk, 0, false); err != nil {
			return nil, fmt.Errorf("node %d round %d: write: %w", id, i, err)
		}
		if err := cl.Flush(ctx); err != nil {
			return nil, fmt.Errorf("node %d round %d: flush: %w", id, i, err)
		}
		lvb := make([]byte, 32)
		binary.LittleEndian.PutUint64(lvb, v)
		if _, err := l.Convert(ctx, locktable.NL, locktable.ValBlk, lvb); err != nil {
			return nil, fmt.Errorf("node %d round %d: convert to NL: %w", id, i, err)
		}
	}
	return l, nil
}
