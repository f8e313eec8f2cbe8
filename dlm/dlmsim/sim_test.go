package dlmsim

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/internal/testenv"
)

var (
	flagSeeds = flag.Int("dlmsim.seeds", 0, "number of seeds for TestRandomizedCluster (default 25, or REPLICAD_DLMSIM_SEEDS)")
	flagSteps = flag.Int("dlmsim.steps", 0, "steps per seed (default 4000, or REPLICAD_DLMSIM_STEPS)")
	flagTrace = flag.Bool("dlmsim.trace", false, "log engine diagnostics")
	flagDrop  = flag.Int("dlmsim.drop", 5, "percent of envelopes dropped")
	flagDup   = flag.Int("dlmsim.dup", 3, "percent of envelopes duplicated")
)

func intSetting(f int, env string, def int) int {
	if f > 0 {
		return f
	}
	if v, err := strconv.Atoi(os.Getenv(env)); err == nil && v > 0 {
		return v
	}
	return def
}

// The randomized cluster: several nodes, message delay, reorder, duplicates
// and drops, crashes, restarts, clean leaves and rejoins, fence
// confirmations and membership notices arriving at each node's own pace
// (so membership changes during recovery), with the safety invariants
// checked after every step and liveness and agreement at the end.
func TestRandomizedCluster(t *testing.T) {
	base := testenv.Seed(t)
	seeds := intSetting(*flagSeeds, "REPLICAD_DLMSIM_SEEDS", 25)
	steps := intSetting(*flagSteps, "REPLICAD_DLMSIM_STEPS", 4000)
	for i := 0; i < seeds; i++ {
		seed := base + uint64(i)
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runSeed(t, seed, steps) })
	}
}

func runSeed(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	opts := Options{Nodes: 2 + rng.IntN(4), DropPct: *flagDrop, DupPct: *flagDup}
	if *flagTrace {
		opts.Logf = t.Logf
	}
	c := New(rng, opts)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d (replay: REPLICAD_SEED=%d go test ./dlm/dlmsim -run 'TestRandomizedCluster/%d$' -dlmsim.seeds=1): %s\nlast events:\n%s",
			seed, seed, seed, fmt.Sprintf(format, args...), c.Trace())
	}
	if err := c.Settle(400); err != nil {
		fail("initial settle: %v", err)
	}
	for s := 1; s <= steps; s++ {
		c.Step(true)
		if err := c.Check(); err != nil {
			fail("step %d: %v", s, err)
		}
		if s%1000 == 0 {
			c.Heal()
			if err := c.Settle(600); err != nil {
				fail("step %d: %v", s, err)
			}
			if err := c.CheckQuiescent(); err != nil {
				fail("step %d quiescent: %v", s, err)
			}
		}
	}
	c.Heal()
	if err := c.Settle(600); err != nil {
		fail("final settle: %v", err)
	}
	if err := c.CheckQuiescent(); err != nil {
		fail("final: %v", err)
	}
	c.UnlockAll()
	if err := c.Settle(600); err != nil {
		fail("drain: %v", err)
	}
	if err := c.CheckDrained(); err != nil {
		fail("drain: %v", err)
	}
	for _, id := range c.IDs() {
		if n := c.Node(id); n.E != nil && len(n.E.Holders()) > 0 {
			fail("node %d still holds %+v after unlocking everything", id, n.E.Holders())
		}
	}
	_ = locktable.NL
}
