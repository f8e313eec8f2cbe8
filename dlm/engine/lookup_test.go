package engine_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/replicad/replicad/dlm/dlmsim"
	"github.com/replicad/replicad/dlm/locktable"
)

// nameWithDir returns a resource name whose directory node is dir.
func nameWithDir(t *testing.T, c *dlmsim.Cluster, dir dlmsim.NodeID) string {
	t.Helper()
	for i := 0; i < 1000; i++ {
		name := fmt.Sprintf("res%d", i)
		if strings.Contains(c.Node(dir).E.ResourceString(name), fmt.Sprintf("dir-node %d ", dir)) {
			return name
		}
	}
	t.Fatalf("no name with directory node %d", dir)
	return ""
}

// hops delivers what is in flight, once per hop, until lock id of node n
// has a completion, and returns the number of hops.
func hops(t *testing.T, c *dlmsim.Cluster, n dlmsim.NodeID, id uint32) int {
	t.Helper()
	for h := 1; h <= 10; h++ {
		c.DeliverAll()
		if len(c.Completions(n, id)) > 0 {
			return h
		}
	}
	t.Fatalf("node %d lock %x: no completion after 10 hops", n, id)
	return 0
}

// acquireFromDirectory1 makes master the master of a resource whose
// directory node is node 1 (in a cluster of three), then takes EX on it
// from requester and checks the grant takes the given number of hops.
func acquireFromDirectory1(t *testing.T, master, requester dlmsim.NodeID, wantHops int, what string) (*dlmsim.Cluster, string, uint32) {
	t.Helper()
	c := cluster(t, 3)
	name := nameWithDir(t, c, 1)
	lock(t, c, master, name, locktable.NL, 0, nil)
	settle(t, c)
	if m := masterOf(c, name); m != master {
		t.Fatalf("master %d, want %d", m, master)
	}
	b := lock(t, c, requester, name, locktable.EX, 0, nil)
	if h := hops(t, c, requester, b); h != wantHops {
		t.Fatalf("granted after %d hops, want %d (%s)", h, wantHops, what)
	}
	wantCallbacks(t, c, requester, b, "granted EX")
	return c, name, b
}

// A lookup carries the request; a directory node that masters the
// resource runs it, so the acquire takes one round trip instead of two.
func TestLookupCarriesRequestToMasteringDirectory(t *testing.T) {
	c, name, b := acquireFromDirectory1(t, 1, 2, 2, "lookup carrying the request, and its replies")
	settle(t, c)
	// a queued carried request is granted by the master it reached
	d := lock(t, c, 3, name, locktable.PR, 0, nil)
	settle(t, c)
	wantCallbacks(t, c, 3, d, "")
	if err := c.Unlock(2, b, 0, nil); err != nil {
		t.Fatal(err)
	}
	settle(t, c)
	wantCallbacks(t, c, 3, d, "granted PR")
	if err := c.CheckQuiescent(); err != nil {
		t.Fatal(err)
	}
}

// A directory node that does not master the resource answers with the
// master and does not run the request, which then goes to the master.
func TestCarriedRequestNotRunByOtherDirectory(t *testing.T) {
	c, name, _ := acquireFromDirectory1(t, 2, 3, 4, "lookup, reply, request, reply")
	if m := masterOf(c, name); m != 2 {
		t.Fatalf("master %d after the request, want 2", m)
	}
	// force-unlocked while its lookup is out: ends without a grant
	f := lock(t, c, 1, name, locktable.PR, 0, nil)
	settle(t, c)
	wantCallbacks(t, c, 1, f, "")
	g := lock(t, c, 3, name, locktable.EX, 0, nil)
	if err := c.Unlock(3, g, locktable.ForceUnlock, nil); err != nil {
		t.Fatal(err)
	}
	settle(t, c)
	if got := callbacks(c, 3, g); got != "unlocked IV" {
		t.Fatalf("force-unlocked request: callbacks %q", got)
	}
	if err := c.CheckQuiescent(); err != nil {
		t.Fatal(err)
	}
}

// Force-unlocking a request while the lookup carrying it is out, to a
// directory node that masters the resource: the master ran it, so it is
// unlocked there afterwards; no lock is left behind.
func TestForceUnlockWhileCarried(t *testing.T) {
	c := cluster(t, 2)
	name := nameWithDir(t, c, 1)
	a := lock(t, c, 1, name, locktable.EX, 0, nil)
	settle(t, c)
	b := lock(t, c, 2, name, locktable.EX, 0, nil)
	if err := c.Unlock(2, b, locktable.ForceUnlock, nil); err != nil {
		t.Fatal(err)
	}
	settle(t, c)
	if got := callbacks(c, 2, b); !strings.HasSuffix(got, "unlocked IV") {
		t.Fatalf("callbacks %q, want the unlock last", got)
	}
	wantCallbacks(t, c, 1, a, "granted EX, bast EX")
	if err := c.CheckQuiescent(); err != nil {
		t.Fatal(err)
	}
}
