package dlm

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/replicad/replicad/dlm/engine"
	"github.com/replicad/replicad/internal/clock"
)

// NodeID names a cluster node.
type NodeID = engine.NodeID

// ClusterState is what the membership layer knows: live nodes, quorum,
// failures and fence confirmations as process incarnations, and nodes not
// accounted for since startup.
type ClusterState = engine.ClusterState

// Membership is the DLM's view of the cluster. The cluster manager
// implements it; Static serves until then.
type Membership interface {
	// State returns the current state.
	State() ClusterState
	// Changes is signalled (never closed) when State may have changed.
	Changes() <-chan struct{}
}

// PeerObserver is implemented by memberships that learn liveness from the
// DLM transport: PeerUp when a peer authenticates (with its process
// incarnation), PeerDown when it has been silent for the dead timeout.
type PeerObserver interface {
	PeerUp(node NodeID, inc uint64)
	PeerDown(node NodeID)
}

// FenceConfirmer is implemented by memberships that take fence
// confirmations from an operator (repctl lock fence-confirm).
type FenceConfirmer interface {
	ConfirmFenced(node NodeID) error
}

// FenceRecorder is implemented by memberships that take the results of a
// fencing subsystem: node was switched off (or an operator confirmed it
// down) by an operation that began at the given time, so every process
// incarnation it started before then is fenced, whether or not its failure
// is known yet. Incarnations are start times, which is what makes a time
// comparable with them.
type FenceRecorder interface {
	RecordFenced(node NodeID, at time.Time) error
}

// Static is a membership over a fixed list of nodes. A node is alive from
// the moment it authenticates to this node until the transport reports it
// silent; a node that goes silent, or comes back with a new process
// incarnation, has failed and must be confirmed fenced with ConfirmFenced.
// Nodes never seen since this process started must be seen alive or be
// confirmed fenced too (startup fencing). Quorum is a majority of the
// configured nodes, or any single node with TwoNode set (corosync's
// two_node, which relies on fencing).
type Static struct {
	self    NodeID
	nodes   []NodeID
	twoNode bool
	clk     clock.Clock
	started time.Time
	changes chan struct{}

	mu struct {
		sync.Mutex
		alive   map[NodeID]bool
		inc     map[NodeID]uint64 // last process incarnation seen
		failed  map[NodeID]uint64
		fenced  map[NodeID]uint64
		unknown map[NodeID]bool
	}
}

var (
	_ Membership     = (*Static)(nil)
	_ PeerObserver   = (*Static)(nil)
	_ FenceConfirmer = (*Static)(nil)
	_ FenceRecorder  = (*Static)(nil)
)

// NewStatic returns a static membership of nodes (which must include
// self). clk dates fence confirmations of nodes that are down; nil means
// the real clock.
func NewStatic(self NodeID, nodes []NodeID, twoNode bool, clk clock.Clock) (*Static, error) {
	if !slices.Contains(nodes, self) {
		return nil, fmt.Errorf("dlm membership: self %d is not among nodes %v", self, nodes)
	}
	if clk == nil {
		clk = clock.Real()
	}
	s := &Static{self: self, nodes: slices.Sorted(slices.Values(nodes)), twoNode: twoNode, clk: clk, changes: make(chan struct{}, 1)}
	s.started = clk.Now()
	s.mu.alive = map[NodeID]bool{self: true}
	s.mu.inc = map[NodeID]uint64{}
	s.mu.failed = map[NodeID]uint64{}
	s.mu.fenced = map[NodeID]uint64{}
	s.mu.unknown = map[NodeID]bool{}
	for _, n := range nodes {
		if n != self {
			s.mu.unknown[n] = true
		}
	}
	return s, nil
}

func (s *Static) notify() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// Changes implements Membership.
func (s *Static) Changes() <-chan struct{} { return s.changes }

// State implements Membership.
func (s *Static) State() ClusterState {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := ClusterState{Failed: maps.Clone(s.mu.failed), Fenced: maps.Clone(s.mu.fenced)}
	for _, n := range s.nodes {
		if s.mu.alive[n] {
			cs.Alive = append(cs.Alive, n)
		}
		if s.mu.unknown[n] {
			cs.Unknown = append(cs.Unknown, n)
		}
	}
	cs.Quorate = len(cs.Alive)*2 > len(s.nodes) || (s.twoNode && len(s.nodes) == 2 && len(cs.Alive) >= 1)
	return cs
}

// PeerUp implements PeerObserver.
func (s *Static) PeerUp(node NodeID, inc uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.nodes, node) || node == s.self || inc < s.mu.inc[node] {
		return
	}
	if old := s.mu.inc[node]; old != 0 && inc > old {
		// restarted: whatever the old process held is unfenced
		s.mu.failed[node] = max(s.mu.failed[node], old)
	}
	s.mu.inc[node] = inc
	s.mu.alive[node] = true
	delete(s.mu.unknown, node)
	s.notify()
}

// PeerDown implements PeerObserver.
func (s *Static) PeerDown(node NodeID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.mu.alive[node] || node == s.self {
		return
	}
	s.mu.alive[node] = false
	if inc := s.mu.inc[node]; inc != 0 {
		s.mu.failed[node] = max(s.mu.failed[node], inc)
	}
	s.notify()
}

// ConfirmFenced implements FenceConfirmer: the operator states that node
// has been fenced (powered off or rebooted) since it failed. For a node
// that is down this covers every incarnation it had up to now.
func (s *Static) ConfirmFenced(node NodeID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.nodes, node) {
		return fmt.Errorf("%w: %d (configured: %v)", ErrUnknownNode, node, s.nodes)
	}
	through := s.mu.failed[node]
	if !s.mu.alive[node] {
		through = max(through, uint64(s.clk.Now().UnixNano()))
	}
	if through <= s.mu.fenced[node] && !s.mu.unknown[node] {
		return fmt.Errorf("%w: node %d", ErrNotFailed, node)
	}
	s.mu.fenced[node] = max(s.mu.fenced[node], through)
	delete(s.mu.unknown, node)
	s.notify()
	return nil
}

// RecordFenced implements FenceRecorder. A fence that began after this
// membership started also accounts for the node under startup fencing:
// whatever it held is gone. An older one does not (the node may have come
// back since).
func (s *Static) RecordFenced(node NodeID, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.nodes, node) {
		return fmt.Errorf("%w: %d (configured: %v)", ErrUnknownNode, node, s.nodes)
	}
	if node == s.self {
		return fmt.Errorf("%w: node %d is this node", ErrInvalid, node)
	}
	changed := false
	if through := uint64(max(at.UnixNano(), 0)); through > s.mu.fenced[node] {
		s.mu.fenced[node] = through
		changed = true
	}
	if s.mu.unknown[node] && !at.Before(s.started) {
		delete(s.mu.unknown, node)
		changed = true
	}
	if changed {
		s.notify()
	}
	return nil
}
