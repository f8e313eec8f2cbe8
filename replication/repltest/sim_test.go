package repltest

import (
	"flag"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/uuid"
)

var (
	rounds     = flag.Int("sim.rounds", 25, "simulated clusters per protocol (go test -sim.rounds=N)")
	partitions = flag.Bool("sim.partitions", os.Getenv("REPLICAD_SIM_PARTITIONS") != "0", "quorum rounds split the nodes, mostly isolating the primary, and fail over to the majority (off: -sim.partitions=false or REPLICAD_SIM_PARTITIONS=0)")
	five       = flag.Int("sim.five", 0, "TestSimulationFiveNodes: rounds per protocol of five nodes with quorum and partitions (0: skipped; known not to converge every time, see docs/replication.md, Limits)")
	simLog     = flag.Int("sim.log", 0, "log lines to print with a failure (default: a few dozen)")
)

func logLines(n int) int {
	if *simLog > 0 {
		return *simLog
	}
	return n
}

// TestSimulation runs randomized clusters: writes, flushes, reordered local
// I/O, link breaks, power cuts and failovers. Every few hundred steps the
// cluster drains and "no silent divergence" is checked; every failover
// under protocol C checks that no acknowledged write was lost; at the end
// the cluster must converge.
func TestSimulation(t *testing.T) {
	r := testenv.Rand(t)
	var total Stats
	defer func() {
		t.Logf("%+v", total)
		// The checks are only as good as what the run exercised: fail if a
		// change to the step mix stops reaching the interesting cases.
		if !t.Failed() && (total.CheckedFailovers == 0 || total.Switchovers == 0 || total.Verifies == 0 || total.LinkBreaks == 0 || total.Crashes == 0 || total.InterleavedResync == 0 || total.NoQuorum == 0 || total.OneWay == 0 || *partitions && total.Partitions == 0) {
			t.Fatalf("the simulation no longer exercises everything it checks: %+v", total)
		}
	}()
	for _, proto := range []byte{'A', 'B', 'C'} {
		for round := 0; round < *rounds; round++ {
			nodes := 2 + round%3
			opts := Options{Nodes: nodes, Protocol: proto, Blocks: 256, Policies: uuid.DefaultPolicies(), Checksums: round%2 == 1}
			if nodes >= 3 && round%4 != 0 {
				opts.Quorum, opts.OnNoQuorum = engine.QuorumMajority, engine.OnNoQuorum(round/4%2)
				opts.Partitions = *partitions
			}
			total.Add(runRound(t, r, opts, round))
		}
	}
}

// runRound runs one simulated cluster: the initial sync, 1500 random steps
// with a drain and a divergence check every 300, and a final settle.
func runRound(t *testing.T, r *rand.Rand, opts Options, round int) Stats {
	t.Helper()
	c, err := New(r, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Settle(); err != nil {
		t.Fatalf("protocol %c round %d: initial sync: %v\n%s", opts.Protocol, round, err, c.Log(logLines(60)))
	}
	for step := 0; step < 1500; step++ {
		if err := c.Step(); err != nil {
			t.Fatalf("protocol %c, %d nodes, round %d, step %d: %v\n%s", opts.Protocol, opts.Nodes, round, step, err, c.Log(logLines(80)))
		}
		if step%300 == 299 {
			c.Drain()
			if err := c.CheckDivergence(); err != nil {
				t.Fatalf("protocol %c, %d nodes, round %d, step %d: %v\n%s", opts.Protocol, opts.Nodes, round, step, err, c.Log(logLines(80)))
			}
		}
	}
	if err := c.Settle(); err != nil {
		t.Fatalf("protocol %c, %d nodes, round %d: %v\n%s", opts.Protocol, opts.Nodes, round, err, c.Log(logLines(80)))
	}
	return c.Stats
}

// TestSimulationExternalMetadata runs the same clusters with every node's
// metadata on a device of its own, cut separately from the data in a power
// cut: the data device has no metadata sync to ride on (the activity log
// must sync it before letting extents go).
func TestSimulationExternalMetadata(t *testing.T) {
	r := testenv.Rand(t)
	var total Stats
	// A checked failover (a power cut of the primary that the run can
	// judge) is random: a quarter of the runs of the usual rounds had none,
	// so rounds go on, to a limit, until one has happened.
	for round := 0; round < 2*max(1, *rounds/5) || (total.CheckedFailovers == 0 && round < 100); round++ {
		proto := []byte{'A', 'C'}[round%2]
		nodes := 2 + round/2%2
		opts := Options{Nodes: nodes, Protocol: proto, Blocks: 256, Policies: uuid.DefaultPolicies(), ExternalMeta: true}
		total.Add(runRound(t, r, opts, round))
		if t.Failed() {
			break
		}
	}
	t.Logf("%+v", total)
	if !t.Failed() && (total.Crashes == 0 || total.CheckedFailovers == 0) {
		t.Fatalf("no power cut or checked failover happened: %+v", total)
	}
}

// TestSimulationFencing runs the default clusters with fencing
// resource-only or resource-and-stonith and a simulated crm-fence-peer
// handler: primaries fence the peers they lose, promotions fence the
// unreachable peers first, restarted nodes come up Consistent.
func TestSimulationFencing(t *testing.T) {
	r := testenv.Rand(t)
	var total Stats
	exercised := func() bool { return total.Fenced > 0 && total.ConsistentAttach > 0 && total.Failovers > 0 }
	// Failovers are rare with fencing (a node its primary lost may not be
	// promoted): rounds go on, to a limit, until one has happened.
	for round := 0; round < max(2, *rounds/3) || !exercised() && round < 80; round++ {
		nodes := 2 + round%3
		opts := Options{Nodes: nodes, Protocol: []byte{'A', 'C'}[round/3%2], Blocks: 256, Policies: uuid.DefaultPolicies(),
			Fencing: []engine.FencePolicy{engine.ResourceOnly, engine.ResourceAndStonith}[round%2]}
		if nodes >= 3 && round%4 != 0 {
			opts.Quorum, opts.OnNoQuorum = engine.QuorumMajority, engine.OnNoQuorum(round/4%2)
			opts.Partitions = *partitions
		}
		total.Add(runRound(t, r, opts, round))
		if t.Failed() {
			return
		}
	}
	t.Logf("%+v", total)
	if !exercised() {
		t.Fatalf("fencing was not exercised: %+v", total)
	}
}

// TestSimulationFiveNodes runs five-node clusters with quorum and
// partitions (-sim.five=N rounds per protocol). Not in the default suite:
// it does not always converge yet (docs/replication.md, Limits).
func TestSimulationFiveNodes(t *testing.T) {
	if *five == 0 {
		t.Skip("five-node simulation off: run with -sim.five=N (known gaps: docs/replication.md, Limits)")
	}
	r := testenv.Rand(t)
	for _, proto := range []byte{'A', 'B', 'C'} {
		for round := 0; round < *five; round++ {
			runRound(t, r, Options{Nodes: 5, Protocol: proto, Blocks: 256, Policies: uuid.DefaultPolicies(),
				Quorum: engine.QuorumMajority, OnNoQuorum: engine.OnNoQuorum(round % 2), Partitions: true}, round)
		}
	}
}

// TestSimulationCatchesResyncRace runs the simulation without the range
// lock between resync reads and application writes: the checks must catch
// the divergence this allows, or the simulation is not testing what it
// claims.
func TestSimulationCatchesResyncRace(t *testing.T) {
	r := testenv.Rand(t)
	racy := 0
	for round := 0; round < 500; round++ {
		c, err := New(r, Options{Nodes: 2, Protocol: 'C', Blocks: 64, Policies: uuid.DefaultPolicies(), UnsafeResync: true})
		if err != nil {
			t.Fatal(err)
		}
		for step := 0; step < 2000; step++ {
			before := c.Stats.RacyReads
			if err := c.Step(); err != nil {
				t.Logf("round %d: caught: %v", round, err)
				return
			}
			if c.Stats.RacyReads > before {
				racy++
				c.Drain()
				if err := c.CheckDivergence(); err != nil {
					t.Logf("round %d, after %d racy reads: caught: %v", round, racy, err)
					return
				}
			}
		}
	}
	t.Fatalf("500 rounds without the resync range lock (%d racy reads) found no divergence: the simulation does not reach the race", racy)
}

// TestDualPrimary: two primaries write concurrently, often to the same
// blocks, with local I/O completing in any order and messages interleaved:
// whenever the cluster drains, both disks hold the same data (the conflict
// resolver's write wins a concurrent overlap on both nodes).
func TestDualPrimary(t *testing.T) {
	r := testenv.Rand(t)
	conflicts := 0
	for round := 0; round < 30; round++ {
		c, err := New(r, Options{Nodes: 2, Protocol: 'C', Blocks: 16, Policies: uuid.DefaultPolicies(), DualPrimary: true})
		if err != nil {
			t.Fatal(err)
		}
		for step := 0; step < 2000; step++ {
			if err := c.Step(); err != nil {
				t.Fatalf("round %d step %d: %v\n%s", round, step, err, c.Log(logLines(60)))
			}
			if step%100 == 99 {
				c.Drain()
				if err := c.CheckDivergence(); err != nil {
					t.Fatalf("round %d step %d: %v\n%s", round, step, err, c.Log(logLines(80)))
				}
			}
		}
		conflicts += c.Stats.Conflicts
	}
	if conflicts == 0 {
		t.Fatal("no concurrent overlapping writes happened: the test does not exercise conflict resolution")
	}
	t.Logf("%d concurrent overlapping writes resolved", conflicts)
}
