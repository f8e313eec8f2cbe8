package engine_test

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/replicad/replicad/dlm/dlmsim"
	"github.com/replicad/replicad/dlm/engine"
	"github.com/replicad/replicad/dlm/locktable"
)

// cluster returns a settled fault-free simulated cluster.
func cluster(t testing.TB, n int) *dlmsim.Cluster {
	t.Helper()
	c := dlmsim.New(rand.New(rand.NewPCG(1, 2)), dlmsim.Options{Nodes: n})
	settle(t, c)
	return c
}

func settle(t testing.TB, c *dlmsim.Cluster) {
	t.Helper()
	if err := c.Settle(300); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
}

// drain delivers everything without requiring the lockspace to run.
func drain(t testing.TB, c *dlmsim.Cluster) {
	t.Helper()
	for i := 0; i < 20; i++ {
		c.NotifyAll()
		for _, id := range c.IDs() {
			c.Tick(id)
		}
		for c.InFlight() > 0 {
			c.DeliverAll()
		}
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
}

func lock(t testing.TB, c *dlmsim.Cluster, n dlmsim.NodeID, name string, m locktable.Mode, f locktable.Flags, lvb []byte) uint32 {
	t.Helper()
	id, err := c.Lock(n, name, m, f, lvb, true)
	if err != nil {
		t.Fatalf("node %d lock %q %v: %v", n, name, m, err)
	}
	return id
}

// callbacks renders a lock's callbacks as "granted PR, bast EX".
func callbacks(c *dlmsim.Cluster, n dlmsim.NodeID, id uint32) string {
	var parts []string
	for _, cb := range c.Completions(n, id) {
		if cb.Kind == engine.Blocking {
			parts = append(parts, "bast "+cb.Mode.String())
		} else {
			parts = append(parts, cb.Result.String()+" "+cb.Mode.String())
		}
	}
	return strings.Join(parts, ", ")
}

func wantCallbacks(t *testing.T, c *dlmsim.Cluster, n dlmsim.NodeID, id uint32, want string) {
	t.Helper()
	if got := callbacks(c, n, id); got != want {
		t.Fatalf("node %d lock %x callbacks %q, want %q", n, id, got, want)
	}
}

func masterOf(c *dlmsim.Cluster, name string) dlmsim.NodeID {
	for _, id := range c.IDs() {
		if n := c.Node(id); n.E != nil && n.E.Masters(name) {
			return id
		}
	}
	return 0
}

func TestRemoteLockBlockingCallbackAndGrant(t *testing.T) {
	c := cluster(t, 3)
	a := lock(t, c, 1, "res", locktable.EX, 0, nil)
	settle(t, c)
	if m := masterOf(c, "res"); m != 1 {
		t.Fatalf("first user did not master the resource: master %d", m)
	}
	b := lock(t, c, 2, "res", locktable.PR, 0, nil)
	settle(t, c)
	wantCallbacks(t, c, 1, a, "granted EX, bast PR")
	wantCallbacks(t, c, 2, b, "")
	if err := c.Unlock(1, a, 0, nil); err != nil {
		t.Fatal(err)
	}
	settle(t, c)
	wantCallbacks(t, c, 1, a, "granted EX, bast PR, unlocked IV")
	wantCallbacks(t, c, 2, b, "granted PR")
	// a conversion on the remote master, and its down-conversion
	if err := c.Convert(2, b, locktable.EX, 0, nil); err != nil {
		t.Fatal(err)
	}
	settle(t, c)
	if err := c.Convert(2, b, locktable.NL, 0, nil); err != nil {
		t.Fatal(err)
	}
	settle(t, c)
	wantCallbacks(t, c, 2, b, "granted PR, granted EX, granted NL")
	if err := c.CheckQuiescent(); err != nil {
		t.Fatal(err)
	}
}

func TestCancelAndNoQueueAcrossNodes(t *testing.T) {
	c := cluster(t, 2)
	a := lock(t, c, 1, "res", locktable.EX, 0, nil)
	settle(t, c)
	b := lock(t, c, 2, "res", locktable.PR, locktable.NoQueue, nil)
	w := lock(t, c, 2, "res", locktable.PR, 0, nil)
	settle(t, c)
	wantCallbacks(t, c, 2, b, "would-block IV")
	if err := c.Cancel(2, w); err != nil {
		t.Fatal(err)
	}
	settle(t, c)
	wantCallbacks(t, c, 2, w, "cancelled IV")
	wantCallbacks(t, c, 1, a, "granted EX, bast PR")
	if _, err := c.Lock(2, "res", locktable.PR, 0, nil, true); err != nil {
		t.Fatal(err)
	}
}

// Kill the master of busy resources: survivors keep their granted locks
// and lock ids with no callbacks; nothing the dead node held is granted
// until its fencing is confirmed ("wait fencing" meanwhile); then the
// waiting requests are granted, exactly once.
func TestMasterDeathWaitsForFencingThenRegrants(t *testing.T) {
	c := cluster(t, 3)
	x := lock(t, c, 1, "busy", locktable.EX, 0, nil)
	s := lock(t, c, 1, "shared", locktable.CR, 0, nil)
	settle(t, c)
	w := lock(t, c, 2, "busy", locktable.PR, 0, nil)
	h := lock(t, c, 3, "shared", locktable.PR, 0, nil)
	settle(t, c)
	wantCallbacks(t, c, 3, h, "granted PR")
	wantCallbacks(t, c, 2, w, "")
	_, _ = x, s
	if masterOf(c, "busy") != 1 || masterOf(c, "shared") != 1 {
		t.Fatalf("node 1 should master both resources")
	}

	c.Crash(1)
	drain(t, c)
	for _, id := range []dlmsim.NodeID{2, 3} {
		st := c.Node(id).E.Status()
		if st.State != engine.StateWaitFencing || len(st.NeedFence) != 1 || st.NeedFence[0] != 1 {
			t.Fatalf("node %d status %+v, want wait fencing for node 1", id, st)
		}
	}
	wantCallbacks(t, c, 2, w, "") // not granted: the dead node held EX

	if err := c.ConfirmFence(3, 1); err != nil {
		t.Fatal(err)
	}
	settle(t, c)
	wantCallbacks(t, c, 2, w, "granted PR")
	wantCallbacks(t, c, 3, h, "granted PR") // kept, no extra callbacks
	var holder engine.Holder
	for _, hh := range c.Node(3).E.Holders() {
		if hh.LkID == h {
			holder = hh
		}
	}
	if holder.Status != locktable.StatusGranted || holder.GrMode != locktable.PR {
		t.Fatalf("survivor's lock %+v, want granted PR with the same id", holder)
	}
	if m := masterOf(c, "busy"); m != 2 && m != 3 {
		t.Fatalf("busy remastered on %d", m)
	}
	if err := c.CheckQuiescent(); err != nil {
		t.Fatal(err)
	}
}

func TestMinorityWaitsForQuorum(t *testing.T) {
	c := cluster(t, 3)
	lock(t, c, 3, "res", locktable.EX, 0, nil)
	settle(t, c)
	c.Crash(1)
	c.Crash(2)
	drain(t, c)
	if st := c.Node(3).E.Status(); st.State != engine.StateWaitQuorum {
		t.Fatalf("status %+v, want wait quorum", st)
	}
	if _, err := c.Lock(3, "other", locktable.EX, 0, nil, true); err != nil {
		t.Fatal(err)
	}
	drain(t, c)
	// no completion while the lockspace is stopped
	for _, h := range c.Node(3).E.Holders() {
		if h.Name == "other" && h.Status == locktable.StatusGranted {
			t.Fatal("granted without quorum")
		}
	}
}

func TestCleanLeaveNeedsNoFencing(t *testing.T) {
	c := cluster(t, 3)
	lock(t, c, 2, "res", locktable.EX, 0, nil)
	settle(t, c)
	w := lock(t, c, 3, "res", locktable.EX, 0, nil)
	settle(t, c)
	c.Leave(2)
	settle(t, c)
	wantCallbacks(t, c, 3, w, "granted EX")
	if st := c.Node(1).E.Status(); len(st.NeedFence) != 0 {
		t.Fatalf("a clean leave asked for fencing: %+v", st)
	}
}

func lvb(c byte) []byte { return bytes.Repeat([]byte{c}, 32) }

func TestLVBRecovery(t *testing.T) {
	t.Run("survives the master's death when a survivor holds it above CR", func(t *testing.T) {
		c := cluster(t, 3)
		lock(t, c, 1, "r", locktable.NL, 0, nil) // node 1 masters r
		settle(t, c)
		w := lock(t, c, 2, "r", locktable.EX, locktable.ValBlk, lvb('v'))
		settle(t, c)
		if err := c.Convert(2, w, locktable.PR, locktable.ValBlk, lvb('v')); err != nil { // EX->PR writes
			t.Fatal(err)
		}
		settle(t, c)
		c.Crash(1)
		drain(t, c)
		if err := c.ConfirmFence(2, 1); err != nil {
			t.Fatal(err)
		}
		settle(t, c)
		r := lock(t, c, 3, "r", locktable.PR, locktable.ValBlk, nil)
		settle(t, c)
		cbs := c.Completions(3, r)
		if len(cbs) != 1 || !bytes.Equal(cbs[0].LVB, lvb('v')) || cbs[0].SB&locktable.ValNotValid != 0 {
			t.Fatalf("read after remaster: %+v, want valid LVB v", cbs)
		}
	})
	t.Run("is invalid after a dead node held it in EX", func(t *testing.T) {
		c := cluster(t, 3)
		lock(t, c, 1, "r", locktable.NL, 0, nil) // node 1 masters r and survives
		settle(t, c)
		w := lock(t, c, 2, "r", locktable.EX, locktable.ValBlk, lvb('a'))
		settle(t, c)
		if err := c.Convert(2, w, locktable.EX, locktable.ValBlk, lvb('a')); err != nil {
			t.Fatal(err)
		}
		settle(t, c)
		c.Crash(2)
		drain(t, c)
		if err := c.ConfirmFence(1, 2); err != nil {
			t.Fatal(err)
		}
		settle(t, c)
		r := lock(t, c, 3, "r", locktable.PR, locktable.ValBlk, nil)
		settle(t, c)
		cbs := c.Completions(3, r)
		if len(cbs) != 1 || cbs[0].SB&locktable.ValNotValid == 0 {
			t.Fatalf("read after purge: %+v, want VALNOTVALID", cbs)
		}
	})
	t.Run("new master with only NL/CR survivors marks it invalid", func(t *testing.T) {
		c := cluster(t, 3)
		lock(t, c, 1, "r", locktable.NL, 0, nil)
		settle(t, c)
		w := lock(t, c, 2, "r", locktable.EX, locktable.ValBlk, lvb('q'))
		settle(t, c)
		if err := c.Convert(2, w, locktable.CR, locktable.ValBlk, lvb('q')); err != nil {
			t.Fatal(err)
		}
		settle(t, c)
		c.Crash(1)
		drain(t, c)
		if err := c.ConfirmFence(2, 1); err != nil {
			t.Fatal(err)
		}
		settle(t, c)
		r := lock(t, c, 3, "r", locktable.PR, locktable.ValBlk, nil)
		settle(t, c)
		cbs := c.Completions(3, r)
		if len(cbs) != 1 || cbs[0].SB&locktable.ValNotValid == 0 || !bytes.Equal(cbs[0].LVB, lvb('q')) {
			t.Fatalf("read: %+v, want the highest-sequence LVB q marked invalid", cbs)
		}
	})
}

func TestDumpShowsQueues(t *testing.T) {
	c := cluster(t, 2)
	lock(t, c, 1, "res", locktable.EX, 0, nil)
	settle(t, c)
	lock(t, c, 2, "res", locktable.PR, 0, nil)
	settle(t, c)
	d := c.Node(1).E.Dump()
	txt := d.Text()
	for _, want := range []string{`Resource len  3  "res"`, "Master Copy", "Granted Queue", "00000001 EX", "Waiting Queue", "Remote:   2"} {
		if !strings.Contains(txt, want) {
			t.Errorf("dump lacks %q:\n%s", want, txt)
		}
	}
	d2 := c.Node(2).E.Dump()
	if !strings.Contains(d2.Text(), "Local Copy, Master is node 1") {
		t.Errorf("holder dump:\n%s", d2.Text())
	}
}
