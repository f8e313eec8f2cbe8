package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/control"
)

// splitBrainCase is one after-sb policy checked with real processes.
type splitBrainCase struct {
	name     string
	policies string // lines for the volume's replication section
	// aWrites and bWrites are the blocks each side writes while split
	// (a was primary before the split; b is promoted during it).
	aWrites, bWrites []int64
	// aPrimary and bPrimary: the roles when they meet again.
	aPrimary, bPrimary bool
	// victim is "a" or "b": the side whose changes are discarded, by the
	// policy or, when it leaves both StandAlone, by
	// repctl connect --discard-my-data.
	victim string
	// auto: the policy resolves it; otherwise both stay StandAlone.
	auto bool
	// reason is in the StandAlone peers' last_error.
	reason string
	// bug, if set, is a known replication bug that makes the case fail: it
	// skips unless REPLICAD_KNOWN_BUGS is set.
	bug string
}

// TestSplitBrainPolicies creates a real split brain between two replicad
// processes (disconnect, write on the old primary, promote the secondary
// and write there, reconnect) and checks each after-sb policy: who becomes
// the sync target, that the survivor's data wins on both nodes, and for
// "disconnect" that both stay StandAlone naming the divergence, the
// split-brain-handler runs with its variables, and
// `repctl connect --discard-my-data` on the victim resolves it.
func TestSplitBrainPolicies(t *testing.T) {
	// Blocks 100..104 belong to a, 200..201 to b, 300 to both.
	a5 := []int64{100, 101, 102, 103, 104, 300}
	b2 := []int64{200, 201, 300}
	a2 := []int64{100, 101, 300}
	b5 := []int64{200, 201, 202, 203, 204, 300}
	cases := []splitBrainCase{
		{name: "0pri/disconnect", policies: "after-sb-0pri: disconnect", aWrites: a5, bWrites: b2, victim: "b",
			reason: "split brain"},
		{name: "0pri/discard-younger-primary", policies: "after-sb-0pri: discard-younger-primary", aWrites: a5, bWrites: b2,
			victim: "b", auto: true},
		{name: "0pri/discard-older-primary", policies: "after-sb-0pri: discard-older-primary", aWrites: a5, bWrites: b2,
			victim: "a", auto: true},
		// a, the older primary, changed nothing: it loses although
		// discard-younger-primary would have kept it.
		{name: "0pri/discard-zero-changes", policies: "after-sb-0pri: discard-zero-changes", aWrites: nil, bWrites: b2,
			victim: "a", auto: true},
		{name: "0pri/discard-least-changes", policies: "after-sb-0pri: discard-least-changes", aWrites: a2, bWrites: b5,
			victim: "a", auto: true},
		{name: "1pri/disconnect", policies: "after-sb-1pri: disconnect", aWrites: a5, bWrites: b2, aPrimary: true,
			victim: "b", reason: "split brain"},
		// consensus: after-sb-0pri would discard b, the secondary: agreed.
		{name: "1pri/consensus", policies: "after-sb-0pri: discard-younger-primary\n      after-sb-1pri: consensus",
			aWrites: a5, bWrites: b2, aPrimary: true, victim: "b", auto: true},
		// consensus: after-sb-0pri would discard a, the primary: refused.
		{name: "1pri/consensus-refuses", policies: "after-sb-0pri: discard-older-primary\n      after-sb-1pri: consensus",
			aWrites: a5, bWrites: b2, aPrimary: true, victim: "b", reason: "split brain"},
		// discard-secondary: a (the older primary) is the secondary now.
		{name: "1pri/discard-secondary", policies: "after-sb-1pri: discard-secondary", aWrites: a5, bWrites: b2, bPrimary: true,
			victim: "a", auto: true},
		{name: "2pri/disconnect", policies: "after-sb-2pri: disconnect\n      allow-two-primaries: true", aWrites: a5, bWrites: b2,
			aPrimary: true, bPrimary: true, victim: "b", reason: "split brain"},
		// DRBD runs the split-brain detection (and handler) when two
		// primaries meet; replicad refuses them before looking at the
		// generations, so the handler never runs and after-sb-2pri is
		// dead configuration without allow-two-primaries.
		{name: "2pri/disconnect-single-primary-mode", policies: "after-sb-2pri: disconnect", aWrites: a5, bWrites: b2,
			aPrimary: true, bPrimary: true, victim: "b", reason: "split brain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runSplitBrain(t, c) })
	}
}

func runSplitBrain(t *testing.T, c splitBrainCase) {
	if c.bug != "" && os.Getenv("REPLICAD_KNOWN_BUGS") == "" {
		t.Skip("bug: " + c.bug + " (set REPLICAD_KNOWN_BUGS=1 to run)")
	}
	hdir := t.TempDir()
	var a, b *node
	defer func() {
		if t.Failed() && os.Getenv("RPD_DEBUG") != "" {
			for _, n := range []*node{a, b} {
				t.Logf("log of %s:\n%s", n.dir, n.log)
			}
		}
	}()
	handler := fmt.Sprintf("env | grep ^REPLICAD_ | sort > %s/handler-$REPLICAD_NODE_ID.env", hdir)
	a, b = startPair(t, clusterSpec{Volume: "r0", Size: "16MiB", Protocol: "C",
		Extra: fmt.Sprintf("      %s\n      split-brain-handler: '%s'\n", c.policies, handler)})
	sides := map[string]*node{"a": a, "b": b}
	victim, survivor := sides[c.victim], a
	if c.victim == "a" {
		survivor = b
	}
	tags := map[*node]byte{a: 'a', b: 'b'}
	writes := map[*node][]int64{a: c.aWrites, b: c.bWrites}

	// The split: both sides stop talking, a keeps writing, b is promoted
	// and writes too. (b's disconnect finds b Connecting, a having gone;
	// see TestDisconnectWhileConnecting.)
	a.mustRepctl("disconnect", "r0")
	b.waitPeer("r0", "a gone", func(p control.Peer) bool { return p.Connection != "Connected" })
	b.mustRepctl("disconnect", "r0")
	if len(c.aWrites) > 0 {
		a.writeBlocks("r0", 'a', c.aWrites...)
	}
	b.mustRepctl("primary", "r0")
	if len(c.bWrites) > 0 {
		b.writeBlocks("r0", 'b', c.bWrites...)
	}
	if !c.aPrimary {
		a.mustRepctl("secondary", "r0")
	}
	if !c.bPrimary {
		b.mustRepctl("secondary", "r0")
	}

	// They meet again: b (the higher node id, which accepts) first, then a
	// (which dials).
	before := map[*node]int64{a: a.peer("r0").ReceivedBytes["resync"], b: b.peer("r0").ReceivedBytes["resync"]}
	b.mustRepctl("connect", "r0")
	a.mustRepctl("connect", "r0")
	if !c.auto {
		for _, n := range []*node{a, b} {
			other := b
			if n == b {
				other = a
			}
			p := n.waitPeer("r0", "StandAlone after the handshake", func(p control.Peer) bool {
				return p.Connection == "StandAlone" && p.LastError != ""
			})
			// The reason names the divergence: how many blocks each side
			// changed.
			counts := regexp.MustCompile(fmt.Sprintf(`\b%d\b.*\b%d\b`, len(writes[n]), len(writes[other])))
			if !strings.Contains(strings.ToLower(p.LastError), c.reason) || !counts.MatchString(p.LastError) {
				t.Errorf("%s's peer last_error %q: want %q and the changed blocks (%d here, then %d there)", n.name(), p.LastError, c.reason, len(writes[n]), len(writes[other]))
			}
			checkHandlerEnv(t, hdir, n, other)
		}
		// Nothing resolves itself: still StandAlone a moment later.
		time.Sleep(time.Second)
		for _, n := range []*node{a, b} {
			if p := n.peer("r0"); p.Connection != "StandAlone" {
				t.Fatalf("%s's peer after an unresolved split brain: %+v", n.name(), p)
			}
		}
		if v := victim.volume("r0"); v.Role == "Primary" {
			victim.mustRepctl("secondary", "r0")
		}
		for _, n := range []*node{b, a} {
			if n == victim {
				n.mustRepctl("connect", "--discard-my-data", "r0")
			} else {
				n.mustRepctl("connect", "r0")
			}
		}
	} else if _, err := os.Stat(filepath.Join(hdir, "handler-0.env")); err == nil {
		t.Errorf("the split-brain handler ran although %s resolves the split brain", c.policies)
	}

	// The victim becomes the sync target, then both are in sync and hold
	// the survivor's data: its writes, and zeroes where only the victim
	// wrote.
	survivor.waitSync("r0")
	victim.waitSync("r0")
	for _, n := range []*node{a, b} {
		want := map[int64]byte{}
		for _, blk := range writes[victim] {
			want[blk] = 0
		}
		for _, blk := range writes[survivor] {
			want[blk] = tags[survivor]
		}
		for blk, tag := range want {
			if got := n.tagOf("r0", blk); got != tag {
				t.Errorf("%s: block %d holds %q after the resolution; want %q (%s's data wins)", n.name(), blk, got, tag, survivor.name())
			}
		}
	}
	sameData(t, "r0", a, b)
	for _, n := range []*node{a, b} {
		if p := n.peer("r0"); p.OutOfSyncBytes != 0 {
			t.Errorf("%s: %d bytes out of sync after the resolution", n.name(), p.OutOfSyncBytes)
		}
	}
	// The victim received the resync, the survivor sent it.
	if got := victim.peer("r0").ReceivedBytes["resync"] - before[victim]; got == 0 {
		t.Errorf("%s (the victim) received no resync data: %+v", victim.name(), victim.peer("r0"))
	}
	if got := survivor.peer("r0").ReceivedBytes["resync"] - before[survivor]; got != 0 {
		t.Errorf("%s (the survivor) received %d resync bytes: it was a sync target", survivor.name(), got)
	}
}

// checkHandlerEnv checks that n ran the split-brain handler with its
// REPLICAD_* variables.
func checkHandlerEnv(t *testing.T, dir string, n, other *node) {
	t.Helper()
	id, peer := n.statusJSON().Node.ID, other.statusJSON().Node.ID
	path := filepath.Join(dir, fmt.Sprintf("handler-%d.env", id))
	var env string
	waitUntil(t, n.name()+" runs the split-brain handler", 10*time.Second, func() (bool, string) {
		b, err := os.ReadFile(path)
		env = string(b)
		return err == nil && strings.Contains(env, "REPLICAD_DETAIL="), fmt.Sprint(err)
	})
	for _, want := range []string{"REPLICAD_HANDLER=split-brain", "REPLICAD_VOLUME=r0", fmt.Sprintf("REPLICAD_NODE_ID=%d", id), fmt.Sprintf("REPLICAD_PEER_NODE_ID=%d", peer)} {
		if !strings.Contains(env, want+"\n") {
			t.Errorf("%s's split-brain handler environment lacks %s:\n%s", n.name(), want, env)
		}
	}
}
