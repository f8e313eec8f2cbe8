package repltest

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/wire"
)

// Step performs one randomly chosen step. It returns an error when a
// property fails; the cluster log tells the story.
func (c *Cluster) Step() error {
	c.step++
	defer c.powerOff()
	r := c.r
	switch x := r.IntN(100); {
	case x < 30:
		c.clientWrite()
	case x < 33:
		c.clientFlush()
	case x < 50:
		c.localIO()
	case x < 72:
		c.deliver()
	case x < 85:
		c.apply()
	case x < 92:
		c.resyncStep()
	case x < 93:
		if !c.opts.DualPrimary {
			c.stallRandomLink()
		}
	case x < 94:
		if !c.opts.DualPrimary {
			c.breakRandomLink()
		}
	case x < 95:
		if c.split != 0 && c.r.IntN(3) == 0 {
			c.logf("partition heals")
			c.split, c.split2 = 0, 0
		}
		c.connectAll()
		for _, n := range c.Nodes {
			if n.Up {
				n.exec(n.Eng.EndRehandshakeGrace())
			}
		}
	case x < 96:
		c.startVerify()
	case x < 97:
		if !c.opts.DualPrimary {
			return c.crashOrRestart()
		}
	default:
		if !c.opts.DualPrimary {
			return c.failover()
		}
	}
	return nil
}

func (c *Cluster) hotBlock() int64 {
	if c.r.IntN(4) > 0 {
		return c.r.Int64N(min(c.opts.Blocks, 64))
	}
	return c.r.Int64N(c.opts.Blocks)
}

func (c *Cluster) clientWrite() {
	p := c.primary()
	if p == nil {
		return
	}
	b := c.hotBlock()
	// The range lock: a write overlapping one that has not finished its
	// local write waits (here: is not issued yet), so the order the peer
	// applies writes in (sequence order) is the order the local disk saw.
	for _, op := range p.pending {
		if !op.flush && op.block == b {
			return
		}
	}
	c.nextWrite++
	data := stamped(c.nextWrite)
	fua := c.r.IntN(8) == 0
	var id uint64
	var o engine.Output
	var err error
	// The activity log covers the write before it goes to any peer.
	// A client whose write waits for activity-log room (every extent
	// held by writes in flight) does not issue it yet: the steps that
	// complete those writes run first.
	mod, err := p.Vol.BeginModify(c.noWait, c.off(b), Block)
	if errors.Is(err, context.Canceled) {
		c.nextWrite--
		return
	}
	if err != nil {
		c.logf("node %d: write refused by the volume: %v", p.ID, err)
		return
	}
	zero := c.r.IntN(10) == 0
	if zero {
		// WRITE_ZEROES/TRIM: the block reads as "write #0" afterwards.
		c.nextWrite--
		data = make([]byte, Block)
		id, o, err = p.Eng.StartZero(c.off(b), Block, false, fua)
	} else {
		id, o, err = p.Eng.StartWrite(c.off(b), data, fua)
	}
	if err != nil {
		mod.End()
		if errors.Is(err, engine.ErrSuspended) || errors.Is(err, engine.ErrNoQuorum) {
			c.Stats.NoQuorum++
		}
		c.logf("node %d: write refused: %v", p.ID, err)
		return
	}
	c.history[b] = append(c.history[b], clientWrite{id: binaryID(data), by: p.ID})
	c.Stats.Writes++
	p.waiters[id] = waiter{block: b, index: len(c.history[b]) - 1}
	p.pending = append(p.pending, localOp{id: id, block: b, data: data, fua: fua, mod: mod, zero: zero, deallocate: c.r.IntN(2) == 0})
	c.logf("node %d: write #%d to block %d starts (op %d)", p.ID, binaryID(data), b, id)
	p.exec(o)
}

func (c *Cluster) clientFlush() {
	p := c.primary()
	if p == nil {
		return
	}
	id, o, err := p.Eng.StartFlush()
	if err != nil {
		c.logf("node %d: flush refused: %v", p.ID, err)
		return
	}
	p.waiters[id] = waiter{flush: true}
	p.pending = append(p.pending, localOp{id: id, flush: true})
	p.exec(o)
}

// localIO completes one pending local operation, in any order (concurrent
// local I/O completes in any order).
func (c *Cluster) localIO() {
	n := c.pick(func(n *Node) bool { return len(n.pending) > 0 })
	if n == nil {
		return
	}
	i := c.r.IntN(len(n.pending))
	op := n.pending[i]
	n.pending = append(n.pending[:i], n.pending[i+1:]...)
	n.doLocal(op)
}

func (n *Node) doLocal(op localOp) {
	if op.flush {
		n.exec(n.Eng.LocalFlushDone(op.id, n.Vol.Flush(n.c.ctx)))
		return
	}
	var err error
	if op.zero {
		err = op.mod.Zero(op.deallocate, op.fua)
	} else {
		err = op.mod.Write(op.data, op.fua)
	}
	n.mods[op.id] = op.mod
	n.exec(n.Eng.LocalWriteDone(op.id, err))
}

func (c *Cluster) deliver() {
	live := c.linkKeys(func(k [2]uint32, _ *link) bool { return c.canDeliver(k) })
	if len(live) == 0 {
		return
	}
	k := live[c.r.IntN(len(live))]
	c.deliverOn(k)
}

// traceControl logs the control messages each node receives (Hello,
// State, SyncDone, OutOfSync, Confirmed) with a failure's log: set
// REPLICAD_SIM_TRACE=1 when replaying a seed.
var traceControl = os.Getenv("REPLICAD_SIM_TRACE") != ""

func (c *Cluster) deliverOn(k [2]uint32) {
	l := c.links[k]
	m := l.queue[0]
	l.queue = l.queue[1:]
	to := c.Nodes[k[1]]
	if traceControl {
		switch m.(type) {
		case *wire.Hello, *wire.State, *wire.SyncDone, *wire.OutOfSync, *wire.Confirmed:
			c.logf("node %d <- %d: %T %+v", to.ID, k[0], m, m)
		}
	}
	o, err := to.Eng.Receive(k[0], m)
	if err != nil {
		c.logf("node %d: protocol error from %d: %v", to.ID, k[0], err)
		c.breakLink(k[0], k[1])
		return
	}
	to.exec(o)
}

func (c *Cluster) apply() {
	n := c.pick(func(n *Node) bool { return len(n.applies) > 0 })
	if n == nil {
		return
	}
	peers := sortedKeys(n.applies)
	n.applyNext(peers[c.r.IntN(len(peers))])
}

// applyBlocked: the range lock makes a peer write wait for a local write
// of the same blocks that has not finished.
func (n *Node) applyBlocked(a engine.Apply) bool {
	if a.Kind != engine.ApplyWrite && a.Kind != engine.ApplyZero {
		return false
	}
	ln := a.Length
	if a.Kind == engine.ApplyWrite {
		ln = int64(len(a.Data))
	}
	for _, op := range n.pending {
		if !op.flush && n.c.off(op.block) < a.Offset+ln && a.Offset < n.c.off(op.block)+Block {
			return true
		}
	}
	return false
}

func (n *Node) applyNext(peer uint32) bool {
	q := n.applies[peer]
	a := q[0]
	if n.applyBlocked(a) {
		return false
	}
	if len(q) == 1 {
		delete(n.applies, peer)
	} else {
		n.applies[peer] = q[1:]
	}
	var err error
	var skip []engine.Span
	if a.Kind == engine.ApplyWrite || a.Kind == engine.ApplyZero {
		if skip = n.Eng.BeginApply(a); len(skip) > 0 {
			n.c.Stats.Conflicts++
			n.c.logf("node %d: resolves a conflict with %d: skips %v of its write at block %d", n.ID, peer, skip, n.c.block(a.Offset))
		}
	}
	if a.Kind == engine.ApplyWrite || a.Kind == engine.ApplyResync {
		n.c.logf("node %d: applies %v from %d at block %d (write #%d) seq %d", n.ID, a.Kind, peer, n.c.block(a.Offset), binaryID(a.Data), a.Seq)
	}
	switch a.Kind {
	case engine.ApplyWrite:
		for _, p := range engine.Pieces(a.Offset, int64(len(a.Data)), skip) {
			if err = n.Vol.WriteAt(n.c.ctx, a.Data[p.Off-a.Offset:p.Off-a.Offset+p.N], p.Off, a.FUA); err != nil {
				break
			}
		}
	case engine.ApplyResync:
		err = n.Vol.WriteAt(n.c.ctx, a.Data, a.Offset, a.FUA)
	case engine.ApplyFlush, engine.ApplySyncDone:
		err = n.Vol.Flush(n.c.ctx)
	case engine.ApplyZero:
		for _, p := range engine.Pieces(a.Offset, a.Length, skip) {
			if err = n.Vol.WriteZeroes(n.c.ctx, p.Off, p.N, a.Deallocate, a.FUA); err != nil {
				break
			}
		}
	case engine.ApplyDigest:
		a.Data = make([]byte, a.Length)
		err = n.Vol.ReadAt(n.c.ctx, a.Data, a.Offset)
	}
	n.exec(n.Eng.Applied(a, err))
	return true
}

// resyncStep lets one sync source hand out or read a range.
func (c *Cluster) resyncStep() {
	n := c.pick(func(n *Node) bool { return len(n.reads) > 0 || n.syncSource() >= 0 })
	if n == nil {
		return
	}
	if len(n.reads) > 0 && c.r.IntN(2) == 0 {
		if n.tryRead(c.r.IntN(len(n.reads))) {
			c.Stats.InterleavedResync++
		}
		return
	}
	peer := n.syncSource()
	if peer < 0 {
		return
	}
	off, size, link, ok := n.Eng.NextResync(uint32(peer), 16*Block)
	if !ok {
		n.exec(n.Eng.ResyncIdle(uint32(peer)))
		return
	}
	n.reads = append(n.reads, resyncRead{peer: uint32(peer), link: link, off: off, n: size})
}

// tryRead performs a pending resync read unless an application write to
// the range is between queueing and its local write (the range lock).
func (n *Node) tryRead(i int) bool {
	rd := n.reads[i]
	if !n.c.opts.UnsafeResync {
		for _, op := range n.pending {
			if !op.flush && n.c.off(op.block) < rd.off+rd.n && rd.off < n.c.off(op.block)+Block {
				return false
			}
		}
	}
	if n.syncMode(rd.peer) == engine.SyncSource {
		for _, op := range n.pending {
			if !op.flush && n.c.off(op.block) < rd.off+rd.n && rd.off < n.c.off(op.block)+Block {
				n.c.Stats.RacyReads++
				n.c.logf("node %d: racy resync read [%d, +%d) with write to block %d pending", n.ID, rd.off, rd.n, op.block)
			}
		}
	}
	n.reads = append(n.reads[:i], n.reads[i+1:]...)
	n.c.Stats.ResyncRanges++
	data := make([]byte, rd.n)
	err := n.Vol.ReadAt(n.c.ctx, data, rd.off)
	n.exec(n.Eng.ResyncRead(rd.peer, rd.link, rd.off, data, err))
	return true
}

// syncSource returns a peer this node sends resync or verify data to.
func (n *Node) syncSource() int {
	if !n.Up {
		return -1
	}
	for _, p := range n.Eng.Status().Peers {
		if p.Repl == engine.SyncSource || p.Repl == engine.VerifyS {
			return int(p.Node)
		}
	}
	return -1
}

// startVerify starts an online verify on a random Established pair.
func (c *Cluster) startVerify() {
	n := c.pick(func(n *Node) bool { return n.Up })
	if n == nil {
		return
	}
	for _, p := range n.Eng.Status().Peers {
		if p.Conn == engine.Connected && p.Repl == engine.Established {
			o, err := n.Eng.StartVerify(p.Node)
			if err == nil {
				c.Stats.Verifies++
				c.logf("node %d: verify with %d starts", n.ID, p.Node)
				n.exec(o)
			}
			return
		}
	}
}

// canDeliver reports a message waiting on link k that can go through.
func (c *Cluster) canDeliver(k [2]uint32) bool {
	l := c.links[k]
	return l.up && !l.stalled && len(l.queue) > 0
}

// stallRandomLink stops one direction of an up link, as a one-way network
// failure does: the other direction goes on carrying messages, and both
// ends still count the link (for quorum too) until the ping timeout
// breaks it, which the next stall step or drain brings.
func (c *Cluster) stallRandomLink() {
	if c.pingTimeouts() {
		return
	}
	up := c.linkKeys(func(_ [2]uint32, l *link) bool { return l.up })
	if len(up) == 0 {
		return
	}
	k := up[c.r.IntN(len(up))]
	c.links[k].stalled = true
	c.Stats.OneWay++
	c.logf("link %d->%d stalls (the other way still carries)", k[0], k[1])
}

// pingTimeouts breaks the stalled links; it reports whether there were
// any.
func (c *Cluster) pingTimeouts() bool {
	stalled := c.linkKeys(func(_ [2]uint32, l *link) bool { return l.stalled })
	for _, k := range stalled {
		c.logf("link %d->%d: ping timeout", k[0], k[1])
		c.breakLink(k[0], k[1])
	}
	return len(stalled) > 0
}

func (c *Cluster) breakRandomLink() {
	if p := c.primary(); c.opts.Partitions && c.split == 0 && p != nil {
		// A partition: mostly the primary alone on one side, else
		// another node alone, or (four nodes) the primary and one other
		// node against the other two, or three groups: the primary
		// alone, another node alone, and the rest (with three nodes
		// every node alone). In the last two no group has a majority.
		n := uint32(len(c.Nodes))
		other := func() uint32 { return (p.ID + 1 + uint32(c.r.IntN(int(n)-1))) % n }
		switch x := c.r.IntN(8); {
		case x < 2:
			p = c.Nodes[c.r.IntN(len(c.Nodes))]
			c.split = 1 << p.ID
		case x < 4 && n == 4:
			c.split = 1<<p.ID | 1<<other()
			c.Stats.EvenSplits++
		case x == 4:
			c.split, c.split2 = 1<<p.ID, 1<<other()
			c.Stats.ThreeWay++
		default:
			c.split = 1 << p.ID
		}
		c.Stats.Partitions++
		if c.split2 != 0 {
			c.logf("partition: nodes %v | %v | the others", members(c.split), members(c.split2))
		} else {
			c.logf("partition: nodes %v | the others", members(c.split))
		}
		for _, a := range c.Nodes {
			for _, b := range c.Nodes {
				if a.ID < b.ID && c.apart(a.ID, b.ID) {
					c.breakLink(a.ID, b.ID)
				}
			}
		}
		return
	}
	up := c.linkKeys(func(k [2]uint32, l *link) bool { return l.up && k[0] < k[1] })
	if len(up) == 0 {
		return
	}
	k := up[c.r.IntN(len(up))]
	c.logf("link %d-%d breaks", k[0], k[1])
	c.Stats.LinkBreaks++
	c.breakLink(k[0], k[1])
}

// crashOrRestart cuts the power of an up node (rarely the last one up) or
// restarts a down one.
func (c *Cluster) crashOrRestart() error {
	if n := c.pick(func(n *Node) bool { return !n.Up }); n != nil && c.r.IntN(2) == 0 {
		return n.start()
	}
	n := c.pick(func(n *Node) bool { return n.Up })
	if p := c.primary(); p != nil && c.r.IntN(2) == 0 {
		n = p // primaries crashing is what failover is about
	}
	if n == nil {
		return nil
	}
	c.crash(n)
	return nil
}

func (c *Cluster) crash(n *Node) {
	wasPrimary := n.Eng.Role() == engine.Primary
	if wasPrimary {
		// The failover candidates: in sync with the primary now.
		clear(c.candidates)
		c.candidatesOf = n.ID
		for _, m := range c.Nodes {
			if m == n || !m.Up || m.Eng.Disk() != engine.UpToDate {
				continue
			}
			for _, p := range m.Eng.Status().Peers {
				if p.Node == n.ID && p.Conn == engine.Connected && p.Repl == engine.Established && p.InItsSyncSet {
					c.candidates[m.ID] = c.establishedAt[[2]uint32{m.ID, n.ID}]
				}
			}
		}
	}
	delete(c.candidates, n.ID)
	c.Stats.Crashes++
	c.logf("node %d: power cut (primary %v, candidates %v)", n.ID, wasPrimary, sortedKeys(c.candidates))
	n.Up = false
	n.Disk = n.Disk.CrashClone(disk.RandomKeep(c.r))
	if n.Meta != nil {
		n.Meta = n.Meta.CrashClone(disk.RandomKeep(c.r))
	}
	for _, m := range c.Nodes {
		if m != n {
			c.breakLink(n.ID, m.ID)
		}
	}
	// Clients of writes in flight on the dead node never get an answer.
	n.pending, n.reads, n.applies, n.waiters, n.mods = nil, nil, nil, nil, nil
}

// failover promotes a candidate when no primary is up and checks that it
// holds every acknowledged write (protocol C).
func (c *Cluster) failover() error {
	if p := c.primary(); p != nil {
		if c.opts.Partitions && !p.Eng.Quorate() {
			return c.majorityFailover(p)
		}
		if c.r.IntN(4) == 0 {
			return c.switchover(p)
		}
		return nil
	}
	var cands []*Node
	for _, id := range sortedKeys(c.candidates) {
		if n := c.Nodes[id]; n.Up && n.Eng.Disk() == engine.UpToDate && c.promotable(n) {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		// No failover candidate: an operator promotes a node that is in
		// sync with every peer, so writes go on.
		for _, n := range c.Nodes {
			if n.Up && n.Eng.Disk() == engine.UpToDate && n.inSyncWithAll() && c.promotable(n) {
				if o, err := c.promote(n); err == nil {
					c.logf("node %d: promoted (cluster in sync)", n.ID)
					n.exec(o)
				}
				return nil
			}
		}
		return nil
	}
	n := cands[c.r.IntN(len(cands))]
	since := c.candidates[n.ID]
	// Pending applies from the dead primary were received: let them land,
	// as the receiver does before a promotion can be processed.
	o, err := c.promote(n)
	if err != nil {
		c.logf("node %d: promote refused: %v", n.ID, err)
		return nil
	}
	c.logf("node %d: promoted after failover", n.ID)
	c.Stats.Failovers++
	n.exec(o)
	clear(c.candidates)
	if c.opts.Protocol == 'C' {
		c.Stats.CheckedFailovers++
		return c.checkAcked(n, c.candidatesOf, since)
	}
	return nil
}

// majorityFailover promotes, while the primary p is cut off without
// quorum, a node of the majority that was in p's in-sync set when its link
// to p broke; under protocol C it must hold every write p acknowledged
// since then (p could acknowledge none without it and the majority).
func (c *Cluster) majorityFailover(p *Node) error {
	var cands []*Node
	for _, id := range sortedKeys(c.cutOff) {
		n := c.Nodes[id]
		if c.cutOff[id].primary == p.ID && n.Up && n.Eng.Role() == engine.Secondary && n.Eng.Disk() == engine.UpToDate && n.Eng.Quorate() && c.promotable(n) {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	n := cands[c.r.IntN(len(cands))]
	o, err := c.promote(n)
	if err != nil {
		c.logf("node %d: promote while node %d is cut off refused: %v", n.ID, p.ID, err)
		c.Stats.QuorumRefused++
		return nil
	}
	c.logf("node %d: promoted while node %d is cut off without quorum", n.ID, p.ID)
	c.Stats.Failovers++
	c.Stats.QuorumFailovers++
	n.exec(o)
	since := c.cutOff[n.ID].since
	clear(c.cutOff)
	if c.opts.Protocol == 'C' {
		c.Stats.CheckedFailovers++
		return c.checkAcked(n, p.ID, since)
	}
	return nil
}

// switchover demotes the primary p, once every peer wrote its writes, and
// promotes a secondary in sync with it: it must hold every acknowledged
// write, whatever the protocol.
func (c *Cluster) switchover(p *Node) error {
	var cands []*Node
	for _, st := range p.Eng.Status().Peers {
		n := c.Nodes[st.Node]
		if n.Up && st.Conn == engine.Connected && st.Repl == engine.Established && st.Disk == engine.UpToDate && n.Eng.Disk() == engine.UpToDate && c.promotable(n) {
			cands = append(cands, n)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	// Usually the operator stops the writers and waits for the peers to
	// catch up: the primary's connections carry everything in flight
	// (other nodes' steps stay where they are). Otherwise Demote must wait.
	for progress := c.r.IntN(2) == 0; progress; {
		progress = false
		for _, m := range c.Nodes {
			if m == p || !m.Up {
				continue
			}
			for _, k := range [][2]uint32{{p.ID, m.ID}, {m.ID, p.ID}} {
				for c.canDeliver(k) {
					c.deliverOn(k)
					progress = true
				}
			}
			for len(m.applies[p.ID]) > 0 && m.applyNext(p.ID) {
				progress = true
			}
		}
	}
	o, err := p.Eng.Demote()
	if err != nil {
		c.logf("node %d: demote refused: %v", p.ID, err)
		return nil
	}
	p.exec(o)
	n := cands[c.r.IntN(len(cands))]
	// The candidate must see the demotion before it may promote.
	for c.canDeliver([2]uint32{p.ID, n.ID}) {
		c.deliverOn([2]uint32{p.ID, n.ID})
	}
	// Writes p acknowledged while n was in sync with it: under protocol A
	// or B those a previous primary acknowledged may have died with it.
	since := max(c.establishedAt[[2]uint32{n.ID, p.ID}], c.promotedAt[p.ID])
	o, err = c.promote(n)
	if err != nil {
		c.logf("node %d: promote after switchover refused: %v", n.ID, err)
		return nil
	}
	c.logf("node %d: promoted (switchover from node %d)", n.ID, p.ID)
	c.Stats.Switchovers++
	n.exec(o)
	clear(c.candidates)
	return c.checkAcked(n, p.ID, since)
}

// checkAcked: every write the primary p acknowledged since n was
// Established with it (from step since) is on n, or a write issued after
// it is, and so is every write another node acknowledged since then while
// Established with n. (A write acknowledged while the primary ran without
// n may be lost if the primary then lost power before a flush: protocol C
// promises the peer's copy, and there was none. A write another node
// acknowledged while not in sync with n was never promised to n: a
// cut-off primary completing a protocol A write it had sent before its
// links broke, seed 1795472610460262736.)
func (c *Cluster) checkAcked(n *Node, p uint32, since int) error {
	for _, b := range slices.Sorted(maps.Keys(c.history)) {
		hs := c.history[b]
		last := -1
		for i, h := range hs {
			if h.acked && h.ackedAt >= since && (h.by == p || h.with&(1<<n.ID) != 0) {
				last = i
			}
		}
		if last < 0 {
			continue
		}
		got := n.readBlock(b)
		ok := false
		for _, h := range hs[last:] {
			if h.id == got {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("failover to node %d lost acknowledged write #%d to block %d (the block holds #%d)", n.ID, hs[last].id, b, got)
		}
	}
	return nil
}

func (c *Cluster) pick(f func(*Node) bool) *Node {
	var ok []*Node
	for _, n := range c.Nodes {
		if f(n) {
			ok = append(ok, n)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	return ok[c.r.IntN(len(ok))]
}

// linkKeys returns the link directions (from, to) that keep holds, in
// order, so a seed replays exactly.
func (c *Cluster) linkKeys(keep func(k [2]uint32, l *link) bool) [][2]uint32 {
	var ks [][2]uint32
	for k, l := range c.links {
		if keep(k, l) {
			ks = append(ks, k)
		}
	}
	slices.SortFunc(ks, func(a, b [2]uint32) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	return ks
}

// Drain runs every pending step to completion (local I/O, deliveries,
// applies, resyncs, reconnections) until nothing is left.
func (c *Cluster) Drain() {
	for _, l := range c.links {
		l.drainConnects = 0
	}
	c.pingTimeouts()
	for guard := 0; guard < 1_000_000; guard++ {
		c.powerOff()
		progress := false
		for _, n := range c.Nodes {
			if !n.Up {
				continue
			}
			for len(n.pending) > 0 {
				op := n.pending[0]
				n.pending = n.pending[1:]
				n.doLocal(op)
				progress = true
			}
			for _, peer := range sortedKeys(n.applies) {
				for len(n.applies[peer]) > 0 && n.applyNext(peer) {
					progress = true
				}
			}
			for i := 0; i < len(n.reads); {
				if n.tryRead(i) {
					progress = true
				} else {
					i++
				}
			}
			if peer := n.syncSource(); peer >= 0 {
				if off, size, link, ok := n.Eng.NextResync(uint32(peer), ALExtent); ok {
					n.reads = append(n.reads, resyncRead{peer: uint32(peer), link: link, off: off, n: size})
					progress = true
				} else {
					n.exec(n.Eng.ResyncIdle(uint32(peer)))
				}
			}
		}
		for _, k := range c.linkKeys(func(k [2]uint32, _ *link) bool { return c.canDeliver(k) }) {
			for c.canDeliver(k) {
				c.deliverOn(k)
				progress = true
			}
		}
		for i := range c.Nodes {
			for j := i + 1; j < len(c.Nodes); j++ {
				if l := c.links[[2]uint32{uint32(i), uint32(j)}]; l.drainConnects < 20 && c.connect(uint32(i), uint32(j)) {
					l.drainConnects++
					progress = true
				}
			}
		}
		if !progress {
			return
		}
	}
	panic("repltest: Drain made progress a million times: livelock")
}

func (n *Node) inSyncWithAll() bool {
	for _, p := range n.Eng.Status().Peers {
		if p.Conn != engine.Connected || p.Repl != engine.Established || p.Disk != engine.UpToDate {
			return false
		}
	}
	return true
}

func binaryID(b []byte) uint64 {
	if len(b) < 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (n *Node) syncMode(peer uint32) engine.ReplState {
	for _, p := range n.Eng.Status().Peers {
		if p.Node == peer {
			return p.Repl
		}
	}
	return engine.ReplOff
}
