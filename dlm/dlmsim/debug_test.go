package dlmsim

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/replicad/replicad/dlm/locktable"
)

func TestDebugSeed(t *testing.T) {
	seed := uint64(1795394473601487626)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	opts := Options{Nodes: 2 + rng.IntN(4), DropPct: 5, DupPct: 3}
	c := New(rng, opts)
	c.Settle(400)
	last := ""
	for s := 1; s <= 2000; s++ {
		if s%1000 == 0 {
			c.Heal()
			c.Settle(600)
		}
		c.Step(true)
		if s >= 980 {
			cur := ""
			for _, id := range c.IDs() {
				n := c.Node(id)
				if n.E == nil {
					continue
				}
				n.E.MasterCopies(func(name string, lk *locktable.Lock) {
					if lk.ID.Node == 5 && lk.ID.ID == 8 {
						cur += fmt.Sprintf(" master%d:%v/%v", id, lk.Status, lk.GrMode)
					}
				})
				if n.E.Masters("gamma") {
					cur += fmt.Sprintf(" owner%d", id)
					n.E.MasterCopies(func(name string, lk *locktable.Lock) {
						if name == "gamma" {
							cur += fmt.Sprintf(" %v", lk.ID)
						}
					})
				}
				if id == 5 {
					for _, h := range n.E.Holders() {
						if h.LkID == 8 {
							cur += fmt.Sprintf(" holder:%+v gen%d run%v", h, n.E.Generation(), n.E.Running())
						}
					}
				}
			}
			if cur != last {
				t.Logf("%d %s | %s", s, cur, c.trace[len(c.trace)-1])
				last = cur
			}
		}
	}
}
