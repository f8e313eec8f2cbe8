package dlm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/replicad/replicad/dlm/engine"
	"github.com/replicad/replicad/dlm/wire"
	"github.com/replicad/replicad/internal/clock"
)

// Node is this process's member of the DLM: its peer transport and its
// lockspaces.
type Node struct {
	cfg    Config
	clk    clock.Clock
	log    *slog.Logger
	inc    uint64 // process incarnation
	ms     Membership
	peers  map[NodeID]*peerLink
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		closed    bool
		ls        map[string]*Lockspace
		respInc   map[string]uint64 // incarnation answering for a lockspace left here
		nextInc   uint64
		lastHeard map[NodeID]time.Time
		up        map[NodeID]bool
		conns     map[net.Conn]struct{}
	}
	ledger struct {
		sync.Mutex
		failed, fenced map[NodeID]uint64
	}
}

// NewNode starts a node: it accepts peers on cfg.Listener and dials every
// configured peer.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Dial == nil {
		cfg.Dial = func(addr string, timeout time.Duration) (net.Conn, error) {
			return net.DialTimeout("tcp", addr, timeout)
		}
	}
	if cfg.Membership == nil {
		nodes := []NodeID{cfg.NodeID}
		for id := range cfg.Peers {
			nodes = append(nodes, id)
		}
		st, err := NewStatic(cfg.NodeID, nodes, false, cfg.Clock)
		if err != nil {
			return nil, err
		}
		cfg.Membership = st
	}
	n := &Node{cfg: cfg, clk: cfg.Clock, log: cfg.Logger.With("subsystem", "dlm", "node", cfg.NodeID), ms: cfg.Membership,
		peers: map[NodeID]*peerLink{}}
	n.inc = uint64(n.clk.Now().UnixNano())
	n.mu.ls = map[string]*Lockspace{}
	n.mu.respInc = map[string]uint64{}
	n.mu.nextInc = n.inc
	n.mu.lastHeard = map[NodeID]time.Time{}
	n.mu.up = map[NodeID]bool{}
	n.mu.conns = map[net.Conn]struct{}{}
	n.ledger.failed, n.ledger.fenced = map[NodeID]uint64{}, map[NodeID]uint64{}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for _, id := range slices.Sorted(maps.Keys(cfg.Peers)) {
		n.peers[id] = &peerLink{node: id, addr: cfg.Peers[id], q: make(chan []byte, 4096)}
	}
	n.wg.Add(3 + len(n.peers))
	go n.acceptLoop()
	go n.tickLoop()
	go n.watchMembership()
	for _, p := range n.peers {
		go n.sender(p)
	}
	n.log.Info("dlm node started", "incarnation", n.inc, "peers", len(n.peers))
	return n, nil
}

// ID returns this node's id.
func (n *Node) ID() NodeID { return n.cfg.NodeID }

// Incarnation returns this process's incarnation.
func (n *Node) Incarnation() uint64 { return n.inc }

// Membership returns the node's membership.
func (n *Node) Membership() Membership { return n.ms }

// Close stops the node and waits for its goroutines. Lockspaces are not
// left cleanly (the peers see this node fail); call Leave first for that.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.mu.closed {
		n.mu.Unlock()
		return nil
	}
	n.mu.closed = true
	lss := slices.Collect(maps.Values(n.mu.ls))
	conns := slices.Collect(maps.Keys(n.mu.conns))
	n.mu.Unlock()
	n.cancel()
	err := n.cfg.Listener.Close()
	for _, c := range conns {
		c.Close()
	}
	for _, ls := range lss {
		ls.shutdown()
	}
	n.wg.Wait()
	return err
}

// Cluster returns the cluster as this node's lockspaces see it: the
// membership's state merged with the failures and fences learned from
// peers.
func (n *Node) Cluster() ClusterState { return n.clusterState() }

// clusterState is the membership's state merged with what this node's
// lockspaces learned from their peers.
func (n *Node) clusterState() ClusterState {
	cs := n.ms.State()
	n.ledger.Lock()
	defer n.ledger.Unlock()
	cs.Failed, cs.Fenced = mergeMax(cs.Failed, n.ledger.failed), mergeMax(cs.Fenced, n.ledger.fenced)
	return cs
}

func mergeMax(a, b map[NodeID]uint64) map[NodeID]uint64 {
	out := maps.Clone(a)
	if out == nil {
		out = map[NodeID]uint64{}
	}
	for k, v := range b {
		out[k] = max(out[k], v)
	}
	return out
}

func (n *Node) learnLedger(failed, fenced map[NodeID]uint64) {
	n.ledger.Lock()
	defer n.ledger.Unlock()
	for k, v := range failed {
		n.ledger.failed[k] = max(n.ledger.failed[k], v)
	}
	for k, v := range fenced {
		n.ledger.fenced[k] = max(n.ledger.fenced[k], v)
	}
}

func (n *Node) lockspaces() []*Lockspace {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Collect(maps.Values(n.mu.ls))
}

func (n *Node) watchMembership() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.ms.Changes():
			n.applyCluster()
		}
	}
}

func (n *Node) applyCluster() {
	cs := n.clusterState()
	for _, ls := range n.lockspaces() {
		ls.setCluster(cs)
	}
}

func (n *Node) tickLoop() {
	defer n.wg.Done()
	for {
		if !clock.Sleep(n.clk, n.cfg.TickInterval, n.ctx.Done()) {
			return
		}
		for _, ls := range n.lockspaces() {
			ls.tick()
		}
		n.checkLiveness()
	}
}

// ConfirmFenced passes an operator's fence confirmation to the membership.
//
// A failure may be known here only from a peer's ledger: a peer noticed the
// node die before this node's membership did, and this node's lockspaces
// already wait for that fence (a failed incarnation leaves the view even
// while the local membership still counts the node alive). The confirmation
// then covers the failure the ledger knows and travels in the ledger like
// any other, so it succeeds whenever a lockspace here waits for the node.
func (n *Node) ConfirmFenced(node NodeID) error {
	fc, ok := n.ms.(FenceConfirmer)
	if !ok {
		return fmt.Errorf("dlm: the membership (%T) does not take fence confirmations; confirm through the cluster manager", n.ms)
	}
	if err := fc.ConfirmFenced(node); err != nil {
		if !errors.Is(err, ErrNotFailed) || !n.confirmLedgerFailure(node) {
			return err
		}
	}
	n.log.Info("fence confirmed by operator", "fenced", node)
	n.applyCluster()
	return nil
}

// RecordFenced passes the result of a fence operation to the membership:
// node was switched off, or confirmed down, by an operation that began at
// at. Every incarnation of node started before at counts as fenced, so a
// fence that completes before this node notices the failure is not lost.
func (n *Node) RecordFenced(node NodeID, at time.Time) error {
	fr, ok := n.ms.(FenceRecorder)
	if !ok {
		return fmt.Errorf("dlm: the membership (%T) does not take fence results; it learns them from the cluster manager", n.ms)
	}
	if err := fr.RecordFenced(node, at); err != nil {
		return err
	}
	n.log.Info("fence recorded", "fenced", node, "through", at)
	n.applyCluster()
	return nil
}

// confirmLedgerFailure records a fence through the failure of node that the
// merged ledger knows and that is not fenced yet; it reports whether there
// was one.
func (n *Node) confirmLedgerFailure(node NodeID) bool {
	cs := n.clusterState()
	failed := cs.Failed[node]
	if failed == 0 || failed <= cs.Fenced[node] {
		return false
	}
	n.learnLedger(nil, map[NodeID]uint64{node: failed})
	return true
}

// Lockspaces returns the status of every lockspace on this node (the
// `dlm_tool ls` view).
func (n *Node) Lockspaces() []engine.Status {
	var out []engine.Status
	for _, ls := range n.lockspaces() {
		out = append(out, ls.Status())
	}
	slices.SortFunc(out, func(a, b engine.Status) int {
		switch {
		case a.Lockspace < b.Lockspace:
			return -1
		case a.Lockspace > b.Lockspace:
			return 1
		}
		return 0
	})
	return out
}

// Lockspace returns a joined lockspace.
func (n *Node) Lockspace(name string) (*Lockspace, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ls := n.mu.ls[name]
	if ls == nil || ls.isLeaving() {
		return nil, fmt.Errorf("%w: %q", ErrNotJoined, name)
	}
	return ls, nil
}

// route delivers an envelope from an authenticated peer.
func (n *Node) route(env *wire.Envelope) {
	n.mu.Lock()
	ls := n.mu.ls[env.Lockspace]
	resp, ok := n.mu.respInc[env.Lockspace]
	if !ok {
		resp = n.inc
	}
	n.mu.Unlock()
	if ls != nil {
		ls.receive(env)
		return
	}
	n.ledger.Lock()
	failed, fenced := maps.Clone(n.ledger.failed), maps.Clone(n.ledger.fenced)
	n.ledger.Unlock()
	cs := n.ms.State()
	if r := engine.NotJoinedReply(n.cfg.NodeID, resp, n.inc, mergeMax(cs.Failed, failed), mergeMax(cs.Fenced, fenced), env); r != nil {
		n.send(r.To, r)
	}
}
