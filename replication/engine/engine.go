package engine

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/replicad/replicad/replication/uuid"
	"github.com/replicad/replicad/replication/wire"
)

// Config describes the volume's replication.
type Config struct {
	// NodeID is this node.
	NodeID uint32
	// Volume is the volume's name (it must match on every node).
	Volume string
	// Peers are the other nodes holding the volume.
	Peers []uint32
	// Protocol is 'A', 'B' or 'C'.
	Protocol byte
	// Checksums makes resyncs send block digests first and data only for
	// blocks that differ (DRBD's csums-alg).
	Checksums bool
	// Policies are the automatic split-brain recovery policies.
	Policies uuid.Policies
	// AllowTwoPrimaries permits dual-primary operation.
	AllowTwoPrimaries bool
	// Fencing is the fencing policy.
	Fencing FencePolicy
	// Quorum and OnNoQuorum: see quorum.go.
	Quorum     QuorumPolicy
	OnNoQuorum OnNoQuorum
	// NewUUID returns a fresh random generation UUID (injected so the
	// simulation is deterministic).
	NewUUID func() uint64
}

// Output is what the caller must do after an engine call, in order.
type Output struct {
	// Sends are messages to queue, per peer in this order.
	Sends []Send
	// Completions are writes and flushes that are now complete.
	Completions []Completion
	// Retired are writes every peer they went to has written (or will
	// resync): the caller may now let their activity-log extents go. Under
	// protocol C that is when they complete; under A and B later. Until
	// then a crash of this node must find them in its activity log, or a
	// write the peer never got would not be resynced.
	Retired []uint64
	// Applies are local operations a secondary performs for received
	// messages, strictly in this order per peer; each is reported back with
	// Applied.
	Applies []Apply
	// Disconnects are peer connections to close.
	Disconnects []Disconnect
	// Resyncs lists peers whose resync sender should run.
	Resyncs []uint32
	// Events are state changes, for logs and `repctl events`.
	Events []Event
	// Handlers are external handlers to run (split-brain, ...).
	Handlers []Handler
}

// Send is a message to queue for a peer.
type Send struct {
	Peer uint32
	Msg  wire.Message
	// Lazy marks a cumulative acknowledgement nothing waits on: the link
	// may hold it back for a short while (replaced by a later one), so
	// that one message acknowledges many writes. It goes out before any
	// message queued after it, and within the link's ack delay.
	Lazy bool
}

// Completion reports a write or flush as done.
type Completion struct {
	ID  uint64
	Err error
}

// ApplyKind says what a secondary applies locally.
type ApplyKind uint8

// Apply kinds.
const (
	ApplyWrite    ApplyKind = iota + 1 // a replicated write
	ApplyResync                        // resync data
	ApplyFlush                         // make everything before durable
	ApplySyncDone                      // flush, then adopt the source's generation
	ApplyZero                          // a replicated WRITE_ZEROES or TRIM
	// ApplyDigest: read [Offset, Offset+Length) into Data and report it
	// with Applied; the engine compares it with the peer's digests.
	ApplyDigest
)

// Apply is a local operation for a received message.
type Apply struct {
	Peer   uint32
	Link   uint64 // the connection it belongs to
	Kind   ApplyKind
	Seq    uint64
	Offset int64
	Data   []byte
	FUA    bool
	Epoch  uint64
	// UUID and History are the generation an ApplySyncDone adopts.
	UUID    uint64
	History []uint64
	// Length and Deallocate describe an ApplyZero (Length also ApplyDigest).
	Length     int64
	Deallocate bool
	// Sums and DigestKind describe an ApplyDigest.
	Sums       []byte
	DigestKind uint8
}

// Span is a byte range.
type Span struct{ Off, N int64 }

// Disconnect asks the caller to close a peer's connection.
type Disconnect struct {
	Peer   uint32
	Reason string
	// StandAlone: do not reconnect until an operator says so.
	StandAlone bool
}

// Event is a state change.
type Event struct {
	// Peer is set for peer events (PeerSet says so).
	Peer    uint32
	PeerSet bool
	What    string // "role", "disk", "connection", "replication", "peer-role", "peer-disk"
	Old     string
	New     string
	Reason  string
}

// Handler is an external handler to run.
type Handler struct {
	Name string // "split-brain"
	Peer uint32
	// Detail explains the situation for the handler's environment.
	Detail string
}

// Engine is one volume's replication state machine. It is not safe for
// concurrent use: callers hold one mutex around every call and perform the
// Output in order before releasing it where order matters (sends).
type Engine struct {
	cfg   Config
	store Store
	role  Role
	gen   Generation
	// unsure: attached with data that was UpToDate, but with fencing on
	// and a peer that is not known to be outdated, so a peer may have
	// moved on meanwhile: the disk is Consistent (DRBD's attach rule)
	// until a handshake with a peer or a promotion that fenced the
	// unreachable peers settles it.
	unsure bool
	peers  map[uint32]*peer
	// order holds the peers by node id: what the engine does for each
	// peer happens in the same order every time (reproducible outputs,
	// and simulation seeds that replay exactly).
	order []*peer

	nextID  uint64
	writes  map[uint64]*write
	flushes map[uint64]*flush
	epoch   uint64
	failed  error // local disk failed
	// suspended: I/O frozen until fencing settles (resource-and-stonith).
	suspended bool
	// quorate is the quorum last reported (quorum.go).
	quorate bool

	// With several peers (see mesh.go): the last write's gid, the writes
	// not yet written by every peer, and what was last announced.
	gid       uint64
	unapplied []unapplied
	announced struct {
		mask        uint32
		current     uint64
		pending     bool
		uncommitted bool
	}
	// rehandshake holds the peers a promotion disconnected to compare
	// data again: they count for quorum until their new handshake decides
	// or fails, or EndRehandshakeGrace; meanwhile writes wait.
	rehandshake uint32
	// pendingGen is a new generation the in-sync peers must take before
	// this primary does (mesh.go).
	pendingGen *pendingGen
}

// New returns an engine for a volume whose persistent state is in store.
// The node starts as secondary; every peer starts unconnected.
func New(cfg Config, store Store) (*Engine, error) {
	switch cfg.Protocol {
	case 'A', 'B', 'C':
	default:
		return nil, fmt.Errorf("protocol %q: want A, B or C", cfg.Protocol)
	}
	if cfg.AllowTwoPrimaries && cfg.Protocol != 'C' {
		// As DRBD: with A or B a write completes before the other primary
		// has it, so a reader there (after taking the DLM lock the writer
		// released) could see old data.
		return nil, fmt.Errorf("allow-two-primaries needs protocol C (with %c a completed write may not be on the other primary yet)", cfg.Protocol)
	}
	if err := cfg.Policies.Validate(); err != nil {
		return nil, err
	}
	if cfg.NewUUID == nil {
		return nil, fmt.Errorf("engine config: NewUUID is required")
	}
	e := &Engine{cfg: cfg, store: store, role: Secondary, peers: make(map[uint32]*peer),
		writes: make(map[uint64]*write), flushes: make(map[uint64]*flush)}
	for _, id := range cfg.Peers {
		if id == cfg.NodeID {
			return nil, fmt.Errorf("peer %d is this node", id)
		}
		slot, err := store.SlotFor(id)
		if err != nil {
			return nil, err
		}
		e.peers[id] = &peer{id: id, slot: slot, conn: Connecting, proto: cfg.Protocol}
		e.order = append(e.order, e.peers[id])
	}
	slices.SortFunc(e.order, func(a, b *peer) int { return cmp.Compare(a.id, b.id) })
	// Read after the slots are assigned: persisting an older copy would
	// give them back.
	e.gen = store.Generation()
	e.quorate = e.Quorate()
	e.unsure = e.gen.Consistent && e.gen.UpToDate && len(e.needsFencing()) > 0
	// This node starts secondary: a crash while primary was already noted
	// by the volume (CrashedPrimary); the persisted Primary flag goes.
	if e.gen.Primary {
		e.gen.Primary = false
		if err := e.persist(); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Role is this node's role.
func (e *Engine) Role() Role { return e.role }

// Disk is this node's disk state.
func (e *Engine) Disk() DiskState {
	switch {
	case e.failed != nil:
		return Failed
	case !e.gen.Consistent:
		return Inconsistent
	case e.gen.UpToDate && e.unsure:
		return Consistent
	case e.gen.UpToDate:
		return UpToDate
	default:
		return Outdated
	}
}

func (e *Engine) persist() error { return e.store.SetGeneration(e.gen) }

// peer returns a configured peer.
func (e *Engine) peer(id uint32) (*peer, error) {
	p, ok := e.peers[id]
	if !ok {
		return nil, fmt.Errorf("%w: node %d", ErrUnknownPeer, id)
	}
	return p, nil
}

// newGeneration makes u the current data generation: for every peer that
// is not in sync with this node (it misses writes) and has no bitmap
// generation yet, the old one becomes its bitmap UUID. Called before a
// primary changes data such a peer will not see.
func (e *Engine) newGeneration(u uint64) {
	e.gen = e.gen.next(u, e.peerMask()&^e.inSyncMask())
}

// peerMask is the set of this volume's peers.
func (e *Engine) peerMask() uint32 {
	var m uint32
	for id := range e.peers {
		m |= bit(id)
	}
	return m
}

// next is g after a new generation u: the absent peers whose bits have no
// start yet start from the current generation, which goes to the history.
func (g Generation) next(u uint64, absent uint32) Generation {
	n := g
	n.Slots = slices.Clone(g.Slots)
	for i := range n.Slots {
		s := &n.Slots[i]
		if s.Node >= 0 && absent&bit(uint32(s.Node)) != 0 && s.Bitmap == 0 {
			s.Bitmap = g.Current
		}
	}
	n.History = pushHistory(g.History, g.Current)
	n.Current, n.Tentative, n.Uncommitted, n.Pending = u, false, false, false
	return n
}

func (e *Engine) freshUUID() uint64 {
	for {
		u := e.cfg.NewUUID() &^ 1
		if u > 16 {
			return u
		}
	}
}

// maxHistory is the number of history UUIDs kept (meta.HistoryLen).
const maxHistory = 32

// pushHistory returns h with u in front (a new slice), at most maxHistory
// long.
func pushHistory(h []uint64, u uint64) []uint64 {
	if u == 0 || u == uuid.JustCreated || slices.Contains(h, u) {
		return h
	}
	h = append([]uint64{u}, h...)
	return h[:min(len(h), maxHistory)]
}

// Status is a snapshot for status output.
type Status struct {
	Role    Role
	Disk    DiskState
	Current uint64
	// Suspended: I/O is frozen waiting for fencing (FencingSuspended) or
	// quorum.
	Suspended, FencingSuspended bool
	// Quorum is the policy; Quorate: the node has quorum (always with
	// quorum off), reaching Reachable of the volume's nodes.
	Quorum    QuorumPolicy
	Quorate   bool
	Reachable int
	Peers     []PeerStatus
}

// PeerStatus is one peer's view.
type PeerStatus struct {
	Node           uint32
	Conn           ConnState
	Repl           ReplState
	Role           Role
	Disk           DiskState
	OutOfSyncBytes int64
	// ResyncTotal and ResyncDone are bytes of the running resync;
	// ResyncSame counts bytes a checksum resync found already equal.
	ResyncTotal, ResyncDone, ResyncSame int64
	// VerifyDone is the bytes compared by a running verify; LastVerify is
	// the last finished one.
	VerifyDone int64
	LastVerify VerifyResult
	// LastError is why the peer last disconnected or was refused, until
	// it connects again; LastDisconnect is the same reason, kept after
	// that.
	LastError, LastDisconnect string
	// Fencing: the fence-peer handler runs for this peer. Outdated: the
	// peer's data is known to be outdated (fenced or told so).
	Fencing, Outdated bool
	// InItsSyncSet: the peer is primary and counts this node among the
	// nodes in sync with it: what makes this node a failover target
	// (Established alone is this node's view; the primary may not have
	// finished the handshake).
	InItsSyncSet bool
}

// Status reports the engine's state.
func (e *Engine) Status() Status {
	st := Status{Role: e.role, Disk: e.Disk(), Current: e.gen.Current, Suspended: e.Suspended(), FencingSuspended: e.suspended,
		Quorum: e.cfg.Quorum, Quorate: e.Quorate(), Reachable: e.reachable()}
	for _, id := range e.cfg.Peers {
		p := e.peers[id]
		ps := PeerStatus{Node: id, Conn: p.conn, Repl: p.repl, Role: p.role, Disk: p.disk,
			OutOfSyncBytes: e.store.OutOfSyncBytes(p.slot), LastError: p.lastErr, LastDisconnect: p.lastEnd,
			Fencing: p.fencing, Outdated: e.gen.Slots[p.slot].Outdated,
			InItsSyncSet: p.role == Primary && p.inSyncKnown && p.inSync&bit(e.cfg.NodeID) != 0}
		if p.repl == SyncSource || p.repl == SyncTarget {
			ps.ResyncTotal = p.rs.total
			ps.ResyncDone = max(0, p.rs.total-ps.OutOfSyncBytes)
			ps.ResyncSame = p.rs.sameBytes
		}
		if p.repl == VerifyS {
			ps.VerifyDone = p.verify.checked
		}
		ps.LastVerify = p.lastVerify
		if p.conn != Connected {
			ps.Role, ps.Disk = RoleUnknown, DUnknown
		}
		st.Peers = append(st.Peers, ps)
	}
	return st
}

func (e *Engine) event(o *Output, what, old, new, reason string) {
	if old != new {
		o.Events = append(o.Events, Event{What: what, Old: old, New: new, Reason: reason})
	}
}

func (e *Engine) peerEvent(o *Output, p *peer, what, old, new, reason string) {
	if old != new {
		o.Events = append(o.Events, Event{Peer: p.id, PeerSet: true, What: what, Old: old, New: new, Reason: reason})
	}
}
