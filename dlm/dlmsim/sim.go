package dlmsim

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/replicad/replicad/dlm/engine"
	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/dlm/wire"
)

// NodeID is a simulated node.
type NodeID = locktable.NodeID

// Options shape a simulated cluster.
type Options struct {
	Nodes     int
	Lockspace string
	LVBLen    int
	DropPct   int // percent of envelopes dropped
	DupPct    int // percent duplicated
	// Logf receives engine diagnostics when set.
	Logf func(format string, args ...any)
}

// Node is one simulated node.
type Node struct {
	ID     NodeID
	E      *engine.Engine // nil while down or not joined
	Inc    uint64
	Up     bool // the process runs
	Joined bool // E has joined (not left)

	leaving *engine.Engine    // a left engine kept until its leave is acknowledged
	stale   bool              // membership changed since it was last told
	respInc uint64            // incarnation the not-joined responder answers with
	started uint64            // step its process started
	ledger  map[NodeID]uint64 // fence confirmations this node's process knows
	failed  map[NodeID]uint64 // failures this node's process knows
	seenInc map[NodeID]uint64 // process incarnation of each peer its transport last saw
	unknown map[NodeID]bool   // nodes not seen alive nor confirmed fenced since it started
}

type packet struct {
	to      NodeID
	env     *wire.Envelope
	nodeInc uint64 // the sender's process incarnation (what a transport authenticates)
}

// Cluster is the simulated cluster.
type Cluster struct {
	rng   *rand.Rand
	opts  Options
	nodes map[NodeID]*Node
	net   []packet
	nextI uint64
	steps uint64

	// crashed incarnations whose fencing is not confirmed, with what their
	// holders were entitled to at the crash
	unfenced map[NodeID][]held
	failed   map[NodeID]uint64 // highest crashed process incarnation of each node
	fenced   map[NodeID]uint64 // highest confirmed anywhere
	crashes  []crash

	model *model
	trace []string
}

type crash struct {
	node NodeID
	inc  uint64
	step uint64
}

type held struct {
	name string
	mode locktable.Mode
	id   uint32
}

// New returns a cluster of opts.Nodes nodes, all up and joined, not yet
// told about each other (call NotifyAll and Settle).
func New(rng *rand.Rand, opts Options) *Cluster {
	if opts.Lockspace == "" {
		opts.Lockspace = "sim"
	}
	if opts.LVBLen == 0 {
		opts.LVBLen = 32
	}
	c := &Cluster{rng: rng, opts: opts, nodes: map[NodeID]*Node{}, unfenced: map[NodeID][]held{},
		failed: map[NodeID]uint64{}, fenced: map[NodeID]uint64{}, model: newModel()}
	for i := 1; i <= opts.Nodes; i++ {
		n := &Node{ID: NodeID(i)}
		c.nodes[n.ID] = n
		c.start(n)
	}
	return c
}

func (c *Cluster) tracef(format string, args ...any) {
	c.trace = append(c.trace, fmt.Sprintf("%6d ", c.steps)+fmt.Sprintf(format, args...))
	if len(c.trace) > 400 {
		c.trace = c.trace[len(c.trace)-300:]
	}
}

// Trace returns the last events, for failure reports.
func (c *Cluster) Trace() string { return strings.Join(c.trace, "\n") }

// Node returns a node.
func (c *Cluster) Node(id NodeID) *Node { return c.nodes[id] }

// IDs returns the node ids in order.
func (c *Cluster) IDs() []NodeID { return slices.Sorted(maps.Keys(c.nodes)) }

func (c *Cluster) start(n *Node) {
	// A node's membership layer keeps what it knows of failures and
	// fencing across restarts (a state file, or the cluster manager's
	// replicated state), and knows its own unclean restart.
	if n.ledger == nil {
		n.ledger, n.failed, n.seenInc = map[NodeID]uint64{}, map[NodeID]uint64{}, map[NodeID]uint64{}
	}
	if n.Inc != 0 {
		n.failed[n.ID] = max(n.failed[n.ID], n.Inc)
	}
	c.nextI++
	n.Inc = c.nextI
	n.Up = true
	n.respInc = n.Inc
	n.unknown = map[NodeID]bool{}
	for _, o := range c.nodes {
		if o != n && !o.Up {
			n.unknown[o.ID] = true // startup fencing
		}
	}
	n.started = c.steps
	c.join(n)
	for _, o := range c.nodes {
		o.stale = true
	}
}

func (c *Cluster) join(n *Node) {
	c.nextI++
	cfg := engine.DefaultConfig()
	cfg.Self, cfg.Incarnation, cfg.NodeInc, cfg.Lockspace, cfg.LVBLen = n.ID, c.nextI, n.Inc, c.opts.Lockspace, c.opts.LVBLen
	cfg.RetransmitTicks, cfg.TossTicks, cfg.MaxBatch = 3, 6, 3
	cfg.Logf = c.opts.Logf
	e, err := engine.New(cfg)
	if err != nil {
		panic(err)
	}
	n.E, n.Joined = e, true
	n.stale = true
	c.collect(n, e)
}

// alive is the oracle's membership: the nodes whose process runs.
func (c *Cluster) alive() []NodeID {
	var out []NodeID
	for _, id := range c.IDs() {
		if c.nodes[id].Up {
			out = append(out, id)
		}
	}
	return out
}

// Quorate reports whether a majority of the configured nodes is up.
func (c *Cluster) Quorate() bool { return len(c.alive())*2 > len(c.nodes) }

// Notify tells one node the current membership.
func (c *Cluster) Notify(id NodeID) {
	n := c.nodes[id]
	if !n.Up {
		return
	}
	n.stale = false
	// a node's membership layer sees the crashes it lives through, and its
	// transport sees restarted peers reconnect
	for _, cr := range c.crashes {
		if cr.step >= n.started {
			n.failed[cr.node] = max(n.failed[cr.node], cr.inc)
		}
	}
	for _, x := range c.IDs() {
		if c.nodes[x].Up {
			delete(n.unknown, x)
		}
		if o := c.nodes[x]; o.Up && x != id && o.Inc > n.seenInc[x] {
			if n.seenInc[x] != 0 {
				n.failed[x] = max(n.failed[x], n.seenInc[x])
			}
			n.seenInc[x] = o.Inc
		}
	}
	cs := engine.ClusterState{Alive: c.alive(), Quorate: c.Quorate(), Failed: maps.Clone(n.failed), Fenced: maps.Clone(n.ledger),
		Unknown: slices.Sorted(maps.Keys(n.unknown))}
	for _, e := range []*engine.Engine{n.E, n.leaving} {
		if e != nil {
			e.SetCluster(cs)
			c.collect(n, e)
		}
	}
}

// NotifyAll tells every node the current membership.
func (c *Cluster) NotifyAll() {
	for _, id := range c.IDs() {
		c.Notify(id)
	}
}

// collect moves an engine's outputs into the network and the model.
func (c *Cluster) collect(n *Node, e *engine.Engine) {
	for x, inc := range e.FencedLedger() {
		n.ledger[x] = max(n.ledger[x], inc)
	}
	for x, inc := range e.FailedLedger() {
		n.failed[x] = max(n.failed[x], inc)
	}
	for _, o := range e.Outbox() {
		c.net = append(c.net, packet{to: o.To, env: o.Env, nodeInc: n.Inc})
	}
	for _, cb := range e.Callbacks() {
		c.model.callback(n.ID, e.Incarnation(), cb)
	}
}

// Deliver delivers (or drops, or duplicates) the in-flight envelope at
// index i.
func (c *Cluster) deliver(i int, faults bool) {
	p := c.net[i]
	c.net = slices.Delete(c.net, i, i+1)
	if faults && c.rng.IntN(100) < c.opts.DropPct {
		return
	}
	if faults && c.rng.IntN(100) < c.opts.DupPct {
		c.net = append(c.net, p)
	}
	n := c.nodes[p.to]
	if n == nil || !n.Up {
		return
	}
	// The transport authenticates the sender's process incarnation before
	// delivering: a newer one means the old one failed; an older one is a
	// dead connection.
	from := p.env.From
	switch seen := n.seenInc[from]; {
	case p.nodeInc < seen:
		return
	case p.nodeInc > seen:
		if seen != 0 {
			n.failed[from] = max(n.failed[from], seen)
		}
		n.seenInc[from] = p.nodeInc
	}
	// Route by the incarnation it is for. Hellos go to every engine of the
	// lockspace; session traffic for an engine the node no longer runs goes
	// to the engine it runs now (which answers with a hello), or, with
	// none, to the not-joined responder.
	var targets []*engine.Engine
	hello := p.env.Seq == 0
	for _, e := range []*engine.Engine{n.E, n.leaving} {
		if e != nil && (hello || p.env.ToInc == e.Incarnation()) {
			targets = append(targets, e)
		}
	}
	if len(targets) == 0 {
		for _, e := range []*engine.Engine{n.E, n.leaving} {
			if e != nil {
				targets = append(targets, e)
				break
			}
		}
	}
	for _, e := range targets {
		e.Receive(p.env)
		c.collect(n, e)
	}
	if len(targets) == 0 {
		if r := engine.NotJoinedReply(n.ID, n.respInc, n.Inc, n.failed, n.ledger, p.env); r != nil {
			c.net = append(c.net, packet{to: r.To, env: r, nodeInc: n.Inc})
		}
	}
	c.leaveDone(n)
}

// leaveDone discards a left engine once its leave is acknowledged; the
// node then answers with a newer incarnation, which a peer that never
// heard of the leave takes for the same process's engine going away, a
// clean leave.
func (c *Cluster) leaveDone(n *Node) {
	if n.leaving != nil && n.leaving.LeaveDone() {
		n.leaving = nil
		c.nextI++
		n.respInc = c.nextI
	}
}

// Tick ticks one node.
func (c *Cluster) Tick(id NodeID) {
	n := c.nodes[id]
	if !n.Up {
		return
	}
	for _, e := range []*engine.Engine{n.E, n.leaving} {
		if e != nil {
			e.Tick()
			c.collect(n, e)
		}
	}
	c.leaveDone(n)
}

// Crash kills a node's process. Its locks stay protected until some node
// confirms its fencing.
func (c *Cluster) Crash(id NodeID) {
	n := c.nodes[id]
	if !n.Up {
		return
	}
	c.tracef("crash node %d", id)
	if n.E != nil {
		var hs []held
		for _, h := range n.E.Holders() {
			if m := Effective(h); m != locktable.IV {
				hs = append(hs, held{name: h.Name, mode: m, id: h.LkID})
			}
		}
		c.unfenced[id] = append(c.unfenced[id], hs...)
		c.model.forget(id, n.E.Incarnation())
	}
	c.failed[id] = max(c.failed[id], n.Inc)
	c.crashes = append(c.crashes, crash{node: id, inc: n.Inc, step: c.steps})
	n.Up, n.E, n.leaving, n.Joined = false, nil, nil, false
	for _, o := range c.nodes {
		o.stale = true
	}
}

// Restart starts a crashed node again with a new incarnation and joins it.
func (c *Cluster) Restart(id NodeID) {
	n := c.nodes[id]
	if n.Up {
		return
	}
	c.tracef("restart node %d", id)
	c.start(n)
}

// Leave makes a node leave the lockspace cleanly; its locks go without
// callbacks.
func (c *Cluster) Leave(id NodeID) {
	n := c.nodes[id]
	if !n.Up || n.E == nil {
		return
	}
	c.tracef("node %d leaves", id)
	c.model.forget(id, n.E.Incarnation())
	n.E.Leave()
	c.collect(n, n.E)
	n.leaving, n.E, n.Joined = n.E, nil, false
}

// Rejoin makes a node that left join the lockspace again, once its leave
// is complete (as the dlm package's Join waits for it).
func (c *Cluster) Rejoin(id NodeID) {
	n := c.nodes[id]
	if !n.Up || n.E != nil || n.leaving != nil {
		return
	}
	c.tracef("node %d rejoins", id)
	c.join(n)
	c.Notify(id)
}

// ConfirmFence confirms, to node at's membership layer only, that node x
// has been fenced (through its last crashed incarnation). The other nodes
// learn it from at's lockspace status.
func (c *Cluster) ConfirmFence(at, x NodeID) error {
	n := c.nodes[at]
	if !n.Up || n.E == nil {
		return fmt.Errorf("node %d cannot confirm: not in the lockspace", at)
	}
	if c.failed[x] == 0 && !n.unknown[x] {
		return fmt.Errorf("node %d never failed", x)
	}
	// A fence of a node that is down now covers every incarnation it ever
	// had; of a node back up, the ones that crashed.
	through := c.failed[x]
	if !c.nodes[x].Up {
		through = c.nextI
	}
	c.tracef("node %d confirms fencing of %d", at, x)
	c.fenced[x] = max(c.fenced[x], through)
	n.ledger[x] = max(n.ledger[x], through)
	delete(n.unknown, x)
	delete(c.unfenced, x)
	c.Notify(at)
	return nil
}

// Unfenced returns the nodes with a crash not yet confirmed fenced.
func (c *Cluster) Unfenced() []NodeID {
	var out []NodeID
	for _, x := range slices.Sorted(maps.Keys(c.failed)) {
		if c.failed[x] > c.fenced[x] {
			out = append(out, x)
		}
	}
	return out
}

// Lock requests a lock on node id.
func (c *Cluster) Lock(id NodeID, name string, mode locktable.Mode, flags locktable.Flags, lvb []byte, bast bool) (uint32, error) {
	n := c.nodes[id]
	if n.E == nil {
		return 0, fmt.Errorf("node %d not joined", id)
	}
	lk, err := n.E.Lock(name, mode, flags, lvb, bast)
	if err == nil {
		c.model.issued(id, n.E.Incarnation(), lk, opReq, bast)
		c.tracef("node %d lock %x %q %v %v", id, lk, name, mode, flags)
	}
	c.collect(n, n.E)
	return lk, err
}

// Convert converts a lock on node id.
func (c *Cluster) Convert(id NodeID, lk uint32, mode locktable.Mode, flags locktable.Flags, lvb []byte) error {
	n := c.nodes[id]
	if n.E == nil {
		return fmt.Errorf("node %d not joined", id)
	}
	err := n.E.Convert(lk, mode, flags, lvb)
	if err == nil {
		c.model.issued(id, n.E.Incarnation(), lk, opConv, false)
		c.tracef("node %d convert %x %v %v", id, lk, mode, flags)
	}
	c.collect(n, n.E)
	return err
}

// Unlock unlocks a lock on node id.
func (c *Cluster) Unlock(id NodeID, lk uint32, flags locktable.Flags, lvb []byte) error {
	n := c.nodes[id]
	if n.E == nil {
		return fmt.Errorf("node %d not joined", id)
	}
	err := n.E.Unlock(lk, flags, lvb)
	if err == nil {
		c.model.issued(id, n.E.Incarnation(), lk, opUnlock, false)
		c.tracef("node %d unlock %x %v", id, lk, flags)
	}
	c.collect(n, n.E)
	return err
}

// Cancel cancels a lock's pending operation on node id.
func (c *Cluster) Cancel(id NodeID, lk uint32) error {
	n := c.nodes[id]
	if n.E == nil {
		return fmt.Errorf("node %d not joined", id)
	}
	err := n.E.Cancel(lk)
	if err == nil {
		c.tracef("node %d cancel %x", id, lk)
	}
	c.collect(n, n.E)
	return err
}

// Completions returns the callbacks a lock received, in order.
func (c *Cluster) Completions(id NodeID, lk uint32) []engine.Callback {
	n := c.nodes[id]
	if n.E == nil {
		return nil
	}
	return c.model.log(id, n.E.Incarnation(), lk)
}

// InFlight returns the number of envelopes in the network.
func (c *Cluster) InFlight() int { return len(c.net) }

// Settle runs the cluster without faults until the network is quiet and
// every joined node runs with the same generation, telling every node the
// membership first. It returns an error if that does not happen within
// maxRounds rounds.
func (c *Cluster) Settle(maxRounds int) error {
	c.NotifyAll()
	quiet := 0
	for round := 0; round < maxRounds; round++ {
		for len(c.net) > 0 {
			c.deliver(0, false)
		}
		for _, id := range c.IDs() {
			c.Tick(id)
		}
		if len(c.net) == 0 && c.converged() {
			quiet++
			if quiet >= 3 {
				return nil
			}
		} else {
			quiet = 0
		}
	}
	var b strings.Builder
	for _, id := range c.IDs() {
		n := c.nodes[id]
		switch {
		case n.E != nil && n.leaving != nil:
			fmt.Fprintf(&b, "\n  node %d (engine %d): %+v; also leaving engine %d waiting for %v", id, n.E.Incarnation(), n.E.Status(), n.leaving.Incarnation(), n.leaving.LeavePending())
		case n.E != nil:
			fmt.Fprintf(&b, "\n  node %d (engine %d): %+v", id, n.E.Incarnation(), n.E.Status())
		case n.leaving != nil:
			fmt.Fprintf(&b, "\n  node %d: leaving (engine %d), waiting for %v", id, n.leaving.Incarnation(), n.leaving.LeavePending())
		default:
			fmt.Fprintf(&b, "\n  node %d: up=%v, not joined", id, n.Up)
		}
	}
	for _, p := range c.net {
		var types []string
		for _, m := range p.env.Msgs {
			types = append(types, m.Type.String())
		}
		fmt.Fprintf(&b, "\n  in flight %d(%d)->%d(%d) seq %d ack %d %v", p.env.From, p.env.FromInc, p.to, p.env.ToInc, p.env.Seq, p.env.Ack, types)
	}
	return fmt.Errorf("cluster did not settle in %d rounds (%d envelopes in flight):%s", maxRounds, len(c.net), b.String())
}

func (c *Cluster) converged() bool {
	var gen uint64
	first := true
	for _, id := range c.IDs() {
		n := c.nodes[id]
		if n.leaving != nil {
			return false
		}
		if n.E == nil {
			continue
		}
		if !n.E.Running() {
			return false
		}
		if first {
			gen, first = n.E.Generation(), false
		} else if n.E.Generation() != gen {
			return false
		}
	}
	return true
}

// Step performs one random event: mostly deliveries and ticks, sometimes a
// client operation, rarely a crash, restart, leave, rejoin, membership
// notification or fence confirmation.
func (c *Cluster) Step(faults bool) {
	c.steps++
	r := c.rng.IntN(1000)
	ids := c.IDs()
	pick := ids[c.rng.IntN(len(ids))]
	switch {
	case r < 450 && len(c.net) > 0:
		// reorder: prefer old packets but not strictly
		i := c.rng.IntN(len(c.net))
		if c.rng.IntN(3) > 0 {
			i = c.rng.IntN(min(len(c.net), 4))
		}
		c.deliver(i, faults)
	case r < 600:
		c.Tick(pick)
	case r < 900:
		c.randomOp(pick)
	case r < 940:
		for _, id := range ids {
			if c.nodes[id].stale && c.rng.IntN(2) == 0 {
				c.Notify(id)
			}
		}
	case r < 960:
		// confirm a fence at some running node
		if un := c.Unfenced(); len(un) > 0 {
			c.ConfirmFence(pick, un[c.rng.IntN(len(un))])
		}
	case r < 970 && faults:
		// crash, keeping at most one node down most of the time
		down := len(ids) - len(c.alive())
		if c.nodes[pick].Up && (down == 0 || c.rng.IntN(8) == 0) {
			c.Crash(pick)
		}
	case r < 985:
		if !c.nodes[pick].Up {
			c.Restart(pick)
		}
	case r < 990 && faults:
		c.Leave(pick)
	case r < 1000:
		c.Rejoin(pick)
	}
}

// Modes the simulated clients pick from, and their flag pools.
var (
	lockFlags = []locktable.Flags{0, 0, 0, locktable.NoQueue, locktable.NoQueue | locktable.NoQueueBast,
		locktable.ValBlk, locktable.HeadQue, locktable.NoOrder, locktable.AltPR, locktable.AltCW}
	convFlags = []locktable.Flags{0, 0, locktable.ConvDeadlk, locktable.NoDlckWt, locktable.QueCvt,
		locktable.NoQueue, locktable.HeadQue, locktable.ValBlk, locktable.ValBlk | locktable.ConvDeadlk}
	names = []string{"alpha", "beta", "gamma", "delta"}
)

func (c *Cluster) randomOp(id NodeID) {
	n := c.nodes[id]
	if n.E == nil {
		return
	}
	hs := n.E.Holders()
	lvb := func() []byte {
		b := make([]byte, c.opts.LVBLen)
		b[0] = byte(c.rng.IntN(256))
		return b
	}
	switch r := c.rng.IntN(10); {
	case r < 4 && len(hs) < 5 || len(hs) == 0:
		m := locktable.Modes[c.rng.IntN(6)]
		f := lockFlags[c.rng.IntN(len(lockFlags))]
		if m == locktable.NL && c.rng.IntN(5) == 0 {
			f = locktable.Expedite
		}
		var b []byte
		if f&locktable.ValBlk != 0 {
			b = lvb()
		}
		c.Lock(id, names[c.rng.IntN(len(names))], m, f, b, c.rng.IntN(4) > 0)
	default:
		h := hs[c.rng.IntN(len(hs))]
		switch c.rng.IntN(6) {
		case 0, 1:
			m := locktable.Modes[c.rng.IntN(6)]
			f := convFlags[c.rng.IntN(len(convFlags))]
			if f&locktable.QueCvt != 0 && !locktable.QuecvtAllowed(h.GrMode, m) {
				f = 0
			}
			c.Convert(id, h.LkID, m, f, nil)
		case 2, 3:
			var f locktable.Flags
			if c.rng.IntN(3) == 0 {
				f = locktable.ValBlk
			}
			c.Unlock(id, h.LkID, f, lvb())
		case 4:
			c.Cancel(id, h.LkID)
		case 5:
			c.Unlock(id, h.LkID, locktable.ForceUnlock, nil)
		}
	}
}

// UnlockAll force-unlocks every lock on every joined node.
func (c *Cluster) UnlockAll() {
	for _, id := range c.IDs() {
		n := c.nodes[id]
		if n.E == nil {
			continue
		}
		for _, h := range n.E.Holders() {
			if !h.Unlock {
				c.Unlock(id, h.LkID, locktable.ForceUnlock, nil)
			}
		}
	}
}

// Effective is the mode a holder may use right now: its granted mode,
// except that a lock being unlocked holds nothing, a down-conversion holds
// its new mode at once, a CONVDEADLK conversion may be demoted to NL at any
// time, and a PR/CW conversion may already have become the other mode (so
// only what both allow, CR, is certain).
func Effective(h engine.Holder) locktable.Mode {
	if h.Unlock {
		return locktable.IV
	}
	converting := h.Status == locktable.StatusConverting || (h.Status == locktable.StatusGranted && h.OpPending)
	switch {
	case h.Status == locktable.StatusGranted && !h.OpPending:
		return h.GrMode
	case !converting:
		return locktable.IV
	case h.Flags&locktable.ConvDeadlk != 0:
		return locktable.NL
	case locktable.MiddleConversion(h.GrMode, h.RqMode):
		return locktable.CR
	case locktable.DownConversion(h.GrMode, h.RqMode):
		return h.RqMode
	}
	return h.GrMode
}

// Heal ends every fault: all nodes learn the membership, restarted nodes
// come back if the cluster lacks quorum, and every failure is confirmed
// fenced at a node that knows of it. Call Settle afterwards.
func (c *Cluster) Heal() {
	if !c.Quorate() {
		for _, id := range c.IDs() {
			c.Restart(id)
		}
	}
	for round := 0; round < 4; round++ {
		c.NotifyAll()
		for len(c.net) > 0 {
			c.deliver(0, false)
		}
		// the operator confirms wherever a lockspace waits for fencing
		for _, at := range c.IDs() {
			if n := c.nodes[at]; n.E != nil {
				for _, x := range n.E.NeedFence() {
					c.ConfirmFence(at, x)
				}
			}
		}
		for _, id := range c.IDs() {
			c.Tick(id)
		}
	}
}

// DeliverAll delivers every envelope now in flight, without faults.
func (c *Cluster) DeliverAll() {
	for n := len(c.net); n > 0 && len(c.net) > 0; n-- {
		c.deliver(0, false)
	}
}

// Envelopes returns the envelopes in flight, oldest first.
func (c *Cluster) Envelopes() []*wire.Envelope {
	envs := make([]*wire.Envelope, len(c.net))
	for i, p := range c.net {
		envs[i] = p.env
	}
	return envs
}

// Inject puts env on the network to node to, ahead of everything in
// flight, as sent by the running process of node env.From: the transport
// accepts it as that node's. Tests use it for a peer that lies.
func (c *Cluster) Inject(to NodeID, env *wire.Envelope) {
	var inc uint64
	if n := c.nodes[env.From]; n != nil {
		inc = n.Inc
	}
	c.net = slices.Insert(c.net, 0, packet{to: to, env: env, nodeInc: inc})
}
