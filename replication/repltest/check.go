package repltest

import (
	"fmt"

	"github.com/replicad/replicad/replication/engine"
)

// CheckDivergence verifies "no silent divergence" after Drain: for every
// pair of nodes that are up, every block whose content differs is marked
// out of sync on at least one side, in its bitmap slot for the other.
func (c *Cluster) CheckDivergence() error {
	for _, a := range c.Nodes {
		for _, b := range c.Nodes {
			if a.ID >= b.ID || !a.Up || !b.Up {
				continue
			}
			sa, _ := a.Vol.SlotFor(b.ID)
			sb, _ := b.Vol.SlotFor(a.ID)
			for blk := int64(0); blk < c.opts.Blocks; blk++ {
				va, vb := a.readBlock(blk), b.readBlock(blk)
				if va == vb {
					continue
				}
				if !marked(a, sa, blk) && !marked(b, sb, blk) {
					return fmt.Errorf("silent divergence: block %d holds write #%d on node %d and #%d on node %d, and neither bitmap marks it", blk, va, a.ID, vb, b.ID)
				}
			}
		}
	}
	return nil
}

func marked(n *Node, slot int, blk int64) bool {
	o := n.c.off(blk)
	off, ok := n.Vol.NextOutOfSync(slot, o)
	return ok && off == o
}

// Settle restarts every down node, reconnects everything and drains, then
// checks convergence: all nodes connected and Established, UpToDate, with
// identical data and empty bitmaps. If no primary is up it promotes the
// lowest UpToDate node first (the old primary may have been lost).
func (c *Cluster) Settle() error {
	c.split, c.split2 = 0, 0
	if err := c.startAll(); err != nil {
		return err
	}
	for try := 0; try < 2 && c.primary() == nil; try++ {
		if try == 1 {
			if len(c.fenced) == 0 {
				break
			}
			// Only fenced nodes could be promoted (they hold data the
			// others lack): as an operator would, lift the cluster
			// manager's constraints.
			c.logf("operator lifts the fencing constraints on %v", sortedKeys(c.fenced))
			clear(c.fenced)
		}
		for _, n := range c.Nodes {
			if (n.Eng.Disk() == engine.UpToDate || n.Eng.Disk() == engine.Consistent) && c.promotable(n) {
				o, err := c.promote(n)
				if err == nil {
					c.logf("node %d: promoted to settle", n.ID)
					n.exec(o)
					break
				}
				c.logf("node %d: promote to settle refused: %v", n.ID, err)
			}
		}
	}
	c.Drain()
	// (a fence-peer handler may have powered a primary off meanwhile)
	if err := c.startAll(); err != nil {
		return err
	}
	ref := c.Nodes[0]
	for _, n := range c.Nodes {
		if n.Eng.Disk() != engine.UpToDate {
			return fmt.Errorf("after settling, node %d is %v", n.ID, n.Eng.Disk())
		}
		for _, p := range n.Eng.Status().Peers {
			if p.Conn != engine.Connected || p.Repl != engine.Established {
				return fmt.Errorf("after settling, node %d sees peer %d %v/%v (%s)", n.ID, p.Node, p.Conn, p.Repl, p.LastError)
			}
			if p.OutOfSyncBytes != 0 {
				return fmt.Errorf("after settling, node %d still marks %d bytes out of sync for node %d", n.ID, p.OutOfSyncBytes, p.Node)
			}
		}
		for blk := int64(0); blk < c.opts.Blocks; blk++ {
			if a, b := ref.readBlock(blk), n.readBlock(blk); a != b {
				return fmt.Errorf("after settling, block %d holds #%d on node %d and #%d on node %d", blk, a, ref.ID, b, n.ID)
			}
		}
	}
	return nil
}

// startAll restarts the nodes that are down and drains.
func (c *Cluster) startAll() error {
	for _, n := range c.Nodes {
		if !n.Up {
			if err := n.start(); err != nil {
				return err
			}
		}
	}
	c.Drain()
	return nil
}
