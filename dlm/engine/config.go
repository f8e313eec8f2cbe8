package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/dlm/wire"
)

// NodeID names a cluster node; 0 is "none".
type NodeID = locktable.NodeID

// Config configures one Engine.
type Config struct {
	Self        NodeID // this node
	Incarnation uint64 // this engine instance (sessions); must grow across restarts and rejoins
	NodeInc     uint64 // this node's process incarnation (fencing identity); must grow across restarts
	Lockspace   string // 1..64 bytes
	LVBLen      int    // 32 or 64, the same on every member

	RetransmitTicks uint64 // ticks before unacknowledged envelopes are resent
	TossTicks       uint64 // ticks an unused mastered resource is kept before it is released
	MaxBatch        int    // entries per recovery message

	// Logf, if set, receives diagnostics (one line each).
	Logf func(format string, args ...any)
}

// DefaultConfig returns a Config with the timing and batching defaults;
// Self, Incarnation and Lockspace must still be set.
func DefaultConfig() Config {
	return Config{LVBLen: 32, RetransmitTicks: 4, TossTicks: 20, MaxBatch: 512}
}

// Validate reports every problem with c.
func (c *Config) Validate() error {
	var errs []string
	if c.Self == 0 {
		errs = append(errs, "self: node id 0; want 1..4294967295")
	}
	if c.Incarnation == 0 {
		errs = append(errs, "incarnation: 0; want a nonzero value that grows across restarts and rejoins")
	}
	if c.NodeInc == 0 {
		errs = append(errs, "node-inc: 0; want the process incarnation, nonzero and growing across restarts")
	}
	if len(c.Lockspace) < 1 || len(c.Lockspace) > wire.MaxLockspace {
		errs = append(errs, fmt.Sprintf("lockspace: %d bytes; want 1..%d", len(c.Lockspace), wire.MaxLockspace))
	}
	if c.LVBLen != 32 && c.LVBLen != 64 {
		errs = append(errs, fmt.Sprintf("lvb-len: %d B; want 32 or 64", c.LVBLen))
	}
	if c.RetransmitTicks < 1 {
		errs = append(errs, "retransmit-ticks: 0; want >= 1")
	}
	if c.TossTicks < 1 {
		errs = append(errs, "toss-ticks: 0; want >= 1")
	}
	if c.MaxBatch < 1 {
		errs = append(errs, fmt.Sprintf("max-batch: %d; want >= 1", c.MaxBatch))
	}
	if len(errs) > 0 {
		return errors.New("engine config: " + strings.Join(errs, "; "))
	}
	return nil
}

// ClusterState is what the cluster's membership layer knows: the nodes
// alive, quorum, and failures and fencing as process incarnations (a node
// restarted with a higher incarnation; fencing through incarnation i covers
// every failure up to i).
type ClusterState struct {
	Alive   []NodeID
	Quorate bool
	Failed  map[NodeID]uint64 // highest failed incarnation of each node
	Fenced  map[NodeID]uint64 // highest incarnation confirmed fenced
	// Unknown lists configured nodes this node has neither seen alive nor
	// had confirmed fenced since it started: one of them may have died
	// holding locks no survivor remembers (the kernel's startup fencing).
	Unknown []NodeID
}

// Outgoing is an envelope to send to a peer.
type Outgoing struct {
	To  NodeID
	Env *wire.Envelope
}

// CallbackKind tells a completion from a blocking callback.
type CallbackKind uint8

// The callback kinds.
const (
	Completion CallbackKind = 1 // the kernel's AST
	Blocking   CallbackKind = 2 // the kernel's BAST
)

// Callback is a callback to deliver to the holder of a local lock.
// Callbacks for one lock must be delivered in the order they are returned.
type Callback struct {
	LkID   uint32
	Kind   CallbackKind
	Result locktable.Result // completion: the outcome
	Mode   locktable.Mode   // completion: the lock's granted mode now (IV if none); blocking: the mode blocked
	SB     locktable.SBFlags
	LVB    []byte // completion: the lock's LVB (VALBLK locks)
	LVBSeq uint32
	Final  bool // completion: the lock no longer exists
}

// ResultInvalid is the completion result of an operation the master
// refused as malformed (it should not happen between correct nodes).
const ResultInvalid locktable.Result = 100

// resultNotMaster is the reply of a node that does not master the resource.
const resultNotMaster locktable.Result = 101
