package engine

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/dlm/wire"
)

// Engine is one node's state for one lockspace. It is not safe for
// concurrent use; every method runs one step and leaves its outputs for
// Outbox and Callbacks.
type Engine struct {
	cfg  Config
	self NodeID
	inc  uint64
	now  uint64

	// membership
	clusterAlive map[NodeID]bool
	clusterSet   bool // SetCluster has been called
	quorate      bool
	unknown      []NodeID // startup fencing: nodes not yet accounted for
	peers        map[NodeID]*peer
	view         []wire.Member     // sorted by node
	viewNodeInc  map[NodeID]uint64 // process incarnation of each view member
	failed       map[NodeID]uint64 // highest failed process incarnation known
	fenced       map[NodeID]uint64 // highest incarnation known fenced (a max-merged ledger)
	ledgerGen    uint64            // counts changes to failed and fenced
	left         bool
	helloSeq     uint64

	// recovery
	running  bool
	gen      uint64 // last completed generation
	maxGen   uint64 // highest generation seen
	rec      *recovery
	statuses map[NodeID]*wire.Msg
	held     []inbound // normal messages held until locking is enabled

	// process side: this node's locks
	nextLkID  uint32
	locks     map[uint32]*plock
	rsbs      map[string]*rsb
	spareRsb  *rsb // the last rsb dropped, reused by the next new one
	lookupSeq uint64

	// master side: resources this node masters, and its directory part
	table *locktable.Table
	owned map[string]*owned
	dir   map[string]NodeID

	// outputs
	out    map[NodeID][]wire.Msg
	selfq  []wire.Msg
	outbox []Outgoing
	cbs    []Callback
	// cbsSpare is the slice Callbacks returned last, reused next
	cbsSpare []Callback
	inStep   bool
}

type inbound struct {
	from NodeID
	inc  uint64 // the sender's engine incarnation
	m    wire.Msg
}

// in wraps a message just delivered from `from` with the sender's current
// incarnation, so that it can be recognized as stale after the sender dies.
func (e *Engine) in(from NodeID, m wire.Msg) inbound {
	if from == e.self {
		return inbound{from, e.inc, m}
	}
	var inc uint64
	if p := e.peers[from]; p != nil {
		inc = p.inc
	}
	return inbound{from, inc, m}
}

// current reports whether a message's sender is a member of the view with
// the incarnation it was sent from.
func (e *Engine) current(in inbound) bool {
	inc, ok := e.viewInc(in.from)
	return ok && inc == in.inc
}

// owned is a resource this node masters.
type owned struct {
	emptySince uint64 // tick its last lock went, 0 while it has locks
	since      uint64 // generation this node became its master in
}

// rsb is this node's view of a resource it holds locks on.
type rsb struct {
	name     string
	master   NodeID // 0: unknown
	mInc     uint64 // the master's engine incarnation when we learned it
	lookupID uint64 // nonzero while a lookup is in flight
	retry    bool   // look the master up again on the next tick
	locks    map[uint32]bool
	heldReqs []inbound // remote operations that arrived while we looked the resource up
}

// New returns an engine that has joined its lockspace and waits for
// SetCluster to learn the cluster.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg: cfg, self: cfg.Self, inc: cfg.Incarnation,
		clusterAlive: map[NodeID]bool{cfg.Self: true},
		peers:        map[NodeID]*peer{},
		viewNodeInc:  map[NodeID]uint64{},
		failed:       map[NodeID]uint64{},
		fenced:       map[NodeID]uint64{},
		statuses:     map[NodeID]*wire.Msg{},
		locks:        map[uint32]*plock{},
		rsbs:         map[string]*rsb{},
		table:        locktable.New(cfg.LVBLen),
		owned:        map[string]*owned{},
		dir:          map[string]NodeID{},
		out:          map[NodeID][]wire.Msg{},
		nextLkID:     1,
	}
	e.view = []wire.Member{{Node: e.self, Inc: e.inc}}
	e.step(e.beginRecovery)
	return e, nil
}

func (e *Engine) logf(format string, args ...any) {
	if e.cfg.Logf != nil {
		e.cfg.Logf("dlm %s node %d: "+format, append([]any{e.cfg.Lockspace, e.self}, args...)...)
	}
}

// step runs f, then delivers the messages this node sent itself and packs
// what it sent others into envelopes. Steps do not nest.
func (e *Engine) step(f func()) {
	if e.inStep {
		f()
		return
	}
	e.inStep = true
	defer func() { e.inStep = false }()
	f()
	for {
		for len(e.selfq) > 0 {
			m := e.selfq[0]
			e.selfq = e.selfq[1:]
			e.handle(e.self, m)
		}
		// gates may have opened during the step (a hello, a status)
		if e.rec != nil && !e.left {
			e.checkStart()
			e.tryPendingStart()
		}
		if len(e.selfq) == 0 {
			break
		}
	}
	e.flush()
}

// Outbox returns and clears the envelopes to send.
func (e *Engine) Outbox() []Outgoing {
	o := e.outbox
	e.outbox = nil
	return o
}

// Callbacks returns and clears the callbacks to deliver, in order.
// The slice is valid until the next call to Callbacks.
func (e *Engine) Callbacks() []Callback {
	c := e.cbs
	e.cbs, e.cbsSpare = e.cbsSpare[:0], c
	return c
}

// Tick advances the engine's clock: it retransmits, says hello to peers
// that do not know it yet, retries lookups and releases idle resources.
func (e *Engine) Tick() {
	e.step(func() {
		e.now++
		for _, p := range e.sortedPeers() {
			if !e.clusterAlive[p.node] {
				continue
			}
			if p.inc == 0 || !p.knowsMe {
				e.sendHello(p)
			}
			if !p.joined {
				p.unacked = nil // it left (or never joined): nothing we sent matters to it
			}
			if len(p.unacked) > 0 && p.inc != 0 && e.now-p.unacked[0].at >= e.cfg.RetransmitTicks {
				for i := range p.unacked {
					p.unacked[i].at = e.now
					env := *p.unacked[i].env
					env.Ack = p.recvNext - 1
					e.outbox = append(e.outbox, Outgoing{To: p.node, Env: &env})
				}
			}
		}
		if e.running && !e.left {
			e.retryLookups()
			e.tossIdle()
		}
		// While waiting for a start, say so again now and then: a status
		// can reach the coordinator just before it finishes a generation
		// and be forgotten.
		if r := e.rec; r != nil && r.gen == 0 && e.now%(2*e.cfg.RetransmitTicks) == 0 {
			e.broadcastStatus()
		}
	})
}

// sortedKeys returns m's keys in order. It is slices.Sorted(maps.Keys(m))
// without the iterator's allocations, and allocates nothing for an empty
// map: it runs in every step.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	if len(m) == 0 {
		return nil
	}
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (e *Engine) sortedPeers() []*peer {
	ids := sortedKeys(e.peers)
	ps := make([]*peer, len(ids))
	for i, id := range ids {
		ps[i] = e.peers[id]
	}
	return ps
}

// send queues a sequenced message to a peer (or to ourselves).
func (e *Engine) send(to NodeID, m wire.Msg) {
	if to == e.self {
		e.selfq = append(e.selfq, m)
		return
	}
	if _, ok := e.out[to]; !ok {
		e.out[to] = nil
	}
	e.out[to] = append(e.out[to], m)
}

// flush packs queued messages into one envelope per peer, and sends bare
// acknowledgements to peers we received from and have nothing for.
func (e *Engine) flush() {
	for _, to := range sortedKeys(e.out) {
		msgs := e.out[to]
		delete(e.out, to)
		p := e.peers[to]
		if p == nil || p.inc == 0 || len(msgs) == 0 {
			if len(msgs) > 0 {
				e.logf("dropping %d messages to node %d: no session", len(msgs), to)
			}
			continue
		}
		p.sendSeq++
		env := &wire.Envelope{
			Lockspace: e.cfg.Lockspace, From: e.self, FromInc: e.inc, To: to, ToInc: p.inc,
			Seq: p.sendSeq, Ack: p.recvNext - 1, Msgs: msgs,
		}
		p.unacked = append(p.unacked, sent{env: env, at: e.now})
		p.ackDue = false
		e.outbox = append(e.outbox, Outgoing{To: to, Env: env})
	}
	var due []NodeID
	for n, p := range e.peers {
		if p.ackDue && p.inc != 0 {
			due = append(due, n)
		}
	}
	slices.Sort(due)
	for _, n := range due {
		p := e.peers[n]
		p.ackDue = false
		e.outbox = append(e.outbox, Outgoing{To: p.node, Env: &wire.Envelope{
			Lockspace: e.cfg.Lockspace, From: e.self, FromInc: e.inc, To: p.node, ToInc: p.inc,
			Ack: p.recvNext - 1,
		}})
	}
}

// dirNode is the directory node of name over view (the kernel hashes the
// name over the member array the same way on every node).
func dirNode(name string, view []wire.Member) NodeID {
	if len(view) == 0 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return view[h.Sum32()%uint32(len(view))].Node
}

func (e *Engine) inView(n NodeID) bool {
	for _, m := range e.view {
		if m.Node == n {
			return true
		}
	}
	return false
}

func (e *Engine) viewInc(n NodeID) (uint64, bool) {
	for _, m := range e.view {
		if m.Node == n {
			return m.Inc, true
		}
	}
	return 0, false
}

// Running reports whether locking is enabled (recovery is complete).
func (e *Engine) Running() bool { return e.running }

// Generation returns the last completed recovery generation.
func (e *Engine) Generation() uint64 { return e.gen }

// Members returns the current lockspace view.
func (e *Engine) Members() []NodeID {
	out := make([]NodeID, len(e.view))
	for i, m := range e.view {
		out[i] = m.Node
	}
	return out
}

// Self returns this node's id.
func (e *Engine) Self() NodeID { return e.self }

// Incarnation returns this engine's incarnation.
func (e *Engine) Incarnation() uint64 { return e.inc }

// Lockspace returns the lockspace name.
func (e *Engine) Lockspace() string { return e.cfg.Lockspace }

// LVBLen returns the lockspace's LVB length.
func (e *Engine) LVBLen() int { return e.cfg.LVBLen }

func (e *Engine) String() string {
	return fmt.Sprintf("engine{%s node %d gen %d running %v}", e.cfg.Lockspace, e.self, e.gen, e.running)
}
