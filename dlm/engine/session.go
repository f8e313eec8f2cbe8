package engine

import (
	"maps"
	"slices"

	"github.com/replicad/replicad/dlm/wire"
)

// maxOutOfOrder bounds the envelopes kept for a gap in a session; later
// ones are dropped and come back with the retransmission.
const maxOutOfOrder = 1024

// peer is another node as this lockspace sees it: its hello state and the
// session with its current incarnation.
type peer struct {
	node     NodeID
	inc      uint64 // 0: not heard from yet
	helloSeq uint64 // highest hello sequence seen from inc
	joined   bool   // its last hello said it has joined the lockspace
	gone     bool   // this incarnation left: a late hello cannot bring it back
	lvbLen   int
	knowsMe  bool   // its last hello named our incarnation
	nodeInc  uint64 // its process incarnation

	sendSeq  uint64
	unacked  []sent
	recvNext uint64
	ooo      map[uint64]*wire.Envelope
	ackDue   bool
}

type sent struct {
	env *wire.Envelope
	at  uint64
}

func (e *Engine) peer(n NodeID) *peer {
	p := e.peers[n]
	if p == nil {
		p = &peer{node: n, recvNext: 1}
		e.peers[n] = p
	}
	return p
}

// resetSession forgets everything exchanged with the peer's previous
// incarnation.
func (p *peer) resetSession(inc uint64) {
	p.inc = inc
	p.helloSeq = 0
	p.joined = false
	p.gone = false
	p.knowsMe = false
	p.nodeInc = 0
	p.sendSeq = 0
	p.unacked = nil
	p.recvNext = 1
	p.ooo = nil
	p.ackDue = false
}

func (p *peer) ack(n uint64) {
	i := 0
	for i < len(p.unacked) && p.unacked[i].env.Seq <= n {
		i++
	}
	p.unacked = p.unacked[i:]
}

// Receive processes an envelope from the network.
func (e *Engine) Receive(env *wire.Envelope) {
	e.step(func() { e.receive(env) })
}

func (e *Engine) receive(env *wire.Envelope) {
	if env.Lockspace != e.cfg.Lockspace || env.To != e.self || env.From == e.self || env.From == 0 || env.FromInc == 0 {
		return
	}
	p := e.peer(env.From)
	if env.ToInc != 0 && env.ToInc != e.inc && !helloOnly(env) {
		// Session traffic for an earlier engine of this node: tell the
		// sender about this one, or it keeps talking to a ghost.
		if env.FromInc >= p.inc && e.clusterAliveOrUnknown(env.From) {
			e.outbox = append(e.outbox, Outgoing{To: env.From, Env: &wire.Envelope{
				Lockspace: e.cfg.Lockspace, From: e.self, FromInc: e.inc, To: env.From, ToInc: env.FromInc,
				Msgs: []wire.Msg{e.helloMsg(env.FromInc, false)},
			}})
		}
		return
	}
	if env.FromInc < p.inc {
		return // an earlier incarnation of the peer
	}
	if env.FromInc > p.inc {
		if env.Seq != 0 || !helloOnly(env) {
			return // sequenced traffic from an incarnation we have not met
		}
		var nodeInc uint64
		if m := env.Msgs[0]; len(m.View) == 1 && m.View[0].Node == p.node {
			nodeInc = m.View[0].Inc
		}
		e.peerRestarted(p, env.FromInc, nodeInc)
	}
	if env.ToInc == e.inc {
		p.ack(env.Ack)
	}
	if env.Seq == 0 {
		for i := range env.Msgs {
			if env.Msgs[i].Type == wire.TypeHello {
				e.onHello(p, &env.Msgs[i])
			}
		}
		return
	}
	if env.ToInc != e.inc {
		return
	}
	p.ackDue = true
	switch {
	case env.Seq < p.recvNext:
		return
	case env.Seq > p.recvNext:
		if p.ooo == nil {
			p.ooo = map[uint64]*wire.Envelope{}
		}
		if len(p.ooo) < maxOutOfOrder {
			p.ooo[env.Seq] = env
		}
		return
	}
	e.deliver(p, env)
	for {
		nx, ok := p.ooo[p.recvNext]
		if !ok {
			return
		}
		delete(p.ooo, p.recvNext)
		e.deliver(p, nx)
	}
}

func helloOnly(env *wire.Envelope) bool {
	if len(env.Msgs) == 0 {
		return false
	}
	for _, m := range env.Msgs {
		if m.Type != wire.TypeHello {
			return false
		}
	}
	return true
}

func (e *Engine) deliver(p *peer, env *wire.Envelope) {
	p.recvNext = env.Seq + 1
	for _, m := range env.Msgs {
		if p.inc != env.FromInc {
			return // the peer was declared restarted by an earlier message
		}
		e.handle(p.node, m)
	}
}

// NotJoinedReply answers an envelope for a lockspace this node has not
// joined (or has left), so that the sender stops counting on it. inc must be higher than the
// incarnation of any engine this node ran for the lockspace; nodeInc is the
// process incarnation; failed and fenced are what this node knows of
// failures and fencing (as in ClusterState). It returns nil if env needs no
// answer.
func NotJoinedReply(self NodeID, inc, nodeInc uint64, failed, fenced map[NodeID]uint64, env *wire.Envelope) *wire.Envelope {
	if env.To != self || env.From == 0 || env.FromInc == 0 {
		return nil
	}
	if env.ToInc == inc && (env.Seq != 0 || len(env.Msgs) == 0 || env.Msgs[len(env.Msgs)-1].Has(wire.BitKnown)) {
		return nil // it knows us and knows that we know it
	}
	// Anything else (a hello, or session traffic for an engine this node
	// no longer runs) gets a hello saying this node has not joined, with
	// an incarnation that supersedes the old engine.
	return &wire.Envelope{
		Lockspace: env.Lockspace, From: self, FromInc: inc, To: env.From, ToInc: env.FromInc,
		// Gen is the hello sequence; the receiver's incarnation grows with
		// each engine it starts, so every new engine takes our answer.
		Msgs: []wire.Msg{{Type: wire.TypeHello, Gen: env.FromInc, ID: env.FromInc, View: []wire.Member{{Node: self, Inc: nodeInc}},
			Bits: knownBit(env.ToInc == inc), Fence: fenceStates(failed, fenced)}},
	}
}

func knownBit(b bool) uint8 {
	if b {
		return wire.BitKnown
	}
	return 0
}

func fenceStates(failed, fenced map[NodeID]uint64) []wire.FenceState {
	nodes := map[NodeID]bool{}
	for n := range failed {
		nodes[n] = true
	}
	for n := range fenced {
		nodes[n] = true
	}
	var fs []wire.FenceState
	for _, n := range slices.Sorted(maps.Keys(nodes)) {
		fs = append(fs, wire.FenceState{Node: n, Failed: failed[n], Fenced: fenced[n]})
	}
	return fs
}
