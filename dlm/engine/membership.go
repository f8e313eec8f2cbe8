package engine

import (
	"maps"
	"slices"

	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/dlm/wire"
)

func (e *Engine) peerRestarted(p *peer, inc, nodeInc uint64) {
	if p.inc != 0 {
		e.logf("node %d has a new engine (incarnation %d -> %d)", p.node, p.inc, inc)
	}
	p.resetSession(inc)
	p.nodeInc = nodeInc
	if e.left {
		e.send(p.node, wire.Msg{Type: wire.TypeLeave})
	}
	e.recomputeView()
}

// SetCluster tells the engine what the cluster's membership layer knows.
// A lockspace member that is no longer alive, or that came back with a new
// incarnation, has failed; recovery waits until every failure known here or
// to any member is covered by a fence confirmation.
func (e *Engine) SetCluster(cs ClusterState) {
	e.step(func() {
		e.clusterSet = true
		e.clusterAlive = map[NodeID]bool{e.self: true}
		for _, n := range cs.Alive {
			e.clusterAlive[n] = true
			if n != e.self {
				e.peer(n)
			}
		}
		changed := e.quorate != cs.Quorate || !slices.Equal(e.unknown, cs.Unknown)
		e.quorate = cs.Quorate
		e.unknown = slices.Sorted(slices.Values(cs.Unknown))
		if e.mergeFailed(cs.Failed) {
			changed = true
		}
		if e.mergeFenced(cs.Fenced) {
			changed = true
		}
		e.recomputeView()
		if changed && e.rec != nil {
			e.statusChanged()
			e.checkStart()
			e.tryPendingStart()
		}
		for _, p := range e.sortedPeers() {
			if e.clusterAlive[p.node] && (p.inc == 0 || !p.knowsMe) {
				e.sendHello(p)
			}
		}
	})
}

// mergeFenced merges a fence ledger into ours; it reports a change.
func (e *Engine) mergeFenced(l map[NodeID]uint64) bool {
	changed := false
	for n, inc := range l {
		if inc > e.fenced[n] {
			if e.failed[n] > e.fenced[n] && inc >= e.failed[n] {
				e.logf("fencing of node %d (through incarnation %d) confirmed", n, inc)
			}
			e.fenced[n] = inc
			e.ledgerGen++
			changed = true
		}
	}
	return changed
}

// mergeFailed merges failures other nodes know of into ours; it reports a
// change.
func (e *Engine) mergeFailed(l map[NodeID]uint64) bool {
	changed := false
	for n, inc := range l {
		if inc > e.failed[n] {
			e.failed[n] = inc
			e.ledgerGen++
			changed = true
		}
	}
	return changed
}

// mergeFence merges a hello's or status's fence states.
func (e *Engine) mergeFence(fs []wire.FenceState) bool {
	failed, fenced := map[NodeID]uint64{}, map[NodeID]uint64{}
	for _, f := range fs {
		failed[f.Node], fenced[f.Node] = f.Failed, f.Fenced
	}
	a := e.mergeFailed(failed)
	b := e.mergeFenced(fenced)
	return a || b
}

// FencedLedger returns the fence confirmations this engine knows,
// including those learned from other nodes, as node -> incarnation.
func (e *Engine) FencedLedger() map[NodeID]uint64 { return maps.Clone(e.fenced) }

// FailedLedger returns the failures this engine knows, including those
// learned from other nodes, as node -> highest failed incarnation.
func (e *Engine) FailedLedger() map[NodeID]uint64 { return maps.Clone(e.failed) }

// LedgerVersion changes whenever FailedLedger or FencedLedger does, so
// that a caller can skip copying them when they have not.
func (e *Engine) LedgerVersion() uint64 { return e.ledgerGen }

func (e *Engine) sendHello(p *peer) {
	e.outbox = append(e.outbox, Outgoing{To: p.node, Env: &wire.Envelope{
		Lockspace: e.cfg.Lockspace, From: e.self, FromInc: e.inc, To: p.node, ToInc: p.inc,
		Msgs: []wire.Msg{e.helloMsg(p.inc, p.knowsMe)},
	}})
}

func (e *Engine) helloMsg(peerInc uint64, known bool) wire.Msg {
	e.helloSeq++
	var bits uint8
	if !e.left {
		bits = wire.BitJoined
	}
	if known {
		bits |= wire.BitKnown
	}
	return wire.Msg{Type: wire.TypeHello, Gen: e.helloSeq, ID: peerInc, Node: NodeID(e.cfg.LVBLen), Bits: bits,
		View: []wire.Member{{Node: e.self, Inc: e.cfg.NodeInc}}, Fence: e.fenceStates()}
}

func (e *Engine) clusterAliveOrUnknown(n NodeID) bool { return !e.clusterSet || e.clusterAlive[n] }

func (e *Engine) onHello(p *peer, m *wire.Msg) {
	if m.Gen <= p.helloSeq {
		return // an older hello, overtaken by a newer one
	}
	p.helloSeq = m.Gen
	p.knowsMe = m.ID == e.inc
	p.lvbLen = int(m.Node)
	if !m.Has(wire.BitJoined) {
		p.gone = true // an engine never joins again once it has left
	}
	p.joined = m.Has(wire.BitJoined) && !p.gone
	if len(m.View) == 1 && m.View[0].Node == p.node {
		p.nodeInc = m.View[0].Inc
	}
	// What every node knows of failures and fencing reaches us before we
	// may recover (helloComplete), so a lockspace no survivor remembers
	// still waits for the fencing of a node that failed in it.
	if e.mergeFence(m.Fence) {
		e.statusChanged()
	}
	if p.joined && p.lvbLen != e.cfg.LVBLen {
		e.logf("node %d joined with %d-byte LVBs, this node uses %d: not admitting it", p.node, p.lvbLen, e.cfg.LVBLen)
	}
	if (!p.knowsMe || !m.Has(wire.BitKnown)) && e.clusterAlive[p.node] {
		// it does not know us, or does not know that we know it
		e.sendHello(p)
	}
	e.recomputeView()
}

// helloComplete reports whether we know, for every live cluster node,
// whether it has joined: until then a view could miss a member. The answer
// must postdate this engine (name its incarnation): two nodes joining at
// once must not each take the other's earlier "not joined" and start
// alone, since one of them then necessarily hears the other's join.
func (e *Engine) helloComplete() bool {
	for n := range e.clusterAlive {
		if p := e.peers[n]; n != e.self && (p == nil || p.inc == 0 || !p.knowsMe) {
			return false
		}
	}
	return true
}

func (e *Engine) recomputeView() {
	if e.left {
		return
	}
	members := []wire.Member{{Node: e.self, Inc: e.inc}}
	for _, p := range e.sortedPeers() {
		// a member whose process incarnation is known to have failed is
		// dead even if its node is back
		if e.clusterAlive[p.node] && p.inc != 0 && p.joined && p.lvbLen == e.cfg.LVBLen && p.nodeInc > e.failed[p.node] {
			members = append(members, wire.Member{Node: p.node, Inc: p.inc})
		}
	}
	slices.SortFunc(members, func(a, b wire.Member) int { return int(a.Node) - int(b.Node) })
	if slices.Equal(members, e.view) {
		return
	}
	for _, old := range e.view {
		if old.Node == e.self || slices.Contains(members, old) {
			continue
		}
		p := e.peers[old.Node]
		// It left if it said so, or if its process is still the same one
		// (only a leave replaces a live process's engine).
		if p != nil && e.clusterAlive[old.Node] && ((p.inc == old.Inc && !p.joined) ||
			(p.nodeInc != 0 && p.nodeInc == e.viewNodeInc[old.Node] && p.nodeInc > e.failed[old.Node])) {
			e.logf("node %d left the lockspace", old.Node)
			continue
		}
		if ni := e.viewNodeInc[old.Node]; ni > e.failed[old.Node] {
			e.failed[old.Node] = ni
			e.ledgerGen++
		}
		e.logf("node %d (incarnation %d) failed; its locks stay until it is fenced", old.Node, e.viewNodeInc[old.Node])
	}
	e.view = members
	e.viewNodeInc = map[NodeID]uint64{e.self: e.cfg.NodeInc}
	for _, m := range members {
		if p := e.peers[m.Node]; p != nil && m.Node != e.self {
			e.viewNodeInc[m.Node] = p.nodeInc
		}
	}
	e.beginRecovery()
}

// gatesOK reports whether this node allows recovery: the cluster is
// quorate and every failure it knows of is fenced.
func (e *Engine) gatesOK() bool {
	return e.quorate && len(e.NeedFence()) == 0
}

// NeedFence returns the nodes with a failure not covered by a fence
// confirmation, and the nodes not accounted for since this node started.
func (e *Engine) NeedFence() []NodeID {
	need := map[NodeID]bool{}
	for n, inc := range e.failed {
		if inc > e.fenced[n] {
			need[n] = true
		}
	}
	for _, n := range e.unknown {
		need[n] = true
	}
	return slices.Sorted(maps.Keys(need))
}

// ConfirmFenced records that node has been fenced after its last known
// failure, as the cluster's fence confirmation would. The confirmation
// reaches the other members with this node's status.
func (e *Engine) ConfirmFenced(node NodeID) error {
	if e.failed[node] <= e.fenced[node] {
		return ErrNotFailed
	}
	e.step(func() {
		e.mergeFenced(map[NodeID]uint64{node: e.failed[node]})
		if e.rec != nil {
			e.statusChanged()
			e.checkStart()
			e.tryPendingStart()
		}
	})
	return nil
}

// Leave makes this node leave the lockspace: it tells the members and stops
// taking part. Its locks are dropped without callbacks; the survivors purge
// them in the recovery the leave starts, without waiting for fencing. The
// engine must be kept (ticked and fed envelopes) until LeaveDone.
func (e *Engine) Leave() {
	if e.left {
		return
	}
	e.step(func() {
		// every peer that knows this incarnation may count it as a member
		for _, p := range e.sortedPeers() {
			if p.inc != 0 {
				e.send(p.node, wire.Msg{Type: wire.TypeLeave})
			}
		}
		e.left = true
		e.running = false
		e.rec = nil
		e.held = nil
		e.locks = map[uint32]*plock{}
		e.rsbs = map[string]*rsb{}
		e.table = locktable.New(e.cfg.LVBLen)
		e.owned = map[string]*owned{}
		e.dir = map[string]NodeID{}
		e.view = nil
	})
}

// LeaveDone reports whether every live peer that has joined the lockspace
// has acknowledged the leave, so that the engine can be discarded after
// Leave. A node that discards it earlier will look failed to such peers.
func (e *Engine) LeaveDone() bool {
	return e.left && len(e.LeavePending()) == 0
}

// LeavePending returns the peers a leave still waits for.
func (e *Engine) LeavePending() []NodeID {
	var out []NodeID
	for _, p := range e.sortedPeers() {
		if e.clusterSet && !e.clusterAlive[p.node] {
			continue // known dead
		}
		if p.inc == 0 || (p.joined && (!p.knowsMe || len(p.unacked) > 0)) {
			out = append(out, p.node)
		}
	}
	return out
}
