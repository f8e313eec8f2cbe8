package engine

import (
	"fmt"
	"slices"

	"github.com/replicad/replicad/replication/wire"
)

// Promote makes this node primary. It needs UpToDate data unless force is
// set; with force, the local data becomes UpToDate and starts a new
// generation, so connected peers resync from it (they are reconnected to
// redo the handshake). A connected primary peer blocks promotion unless
// two primaries are allowed.
func (e *Engine) Promote(force bool) (Output, error) {
	var o Output
	if e.role == Primary {
		return o, nil
	}
	if e.failed != nil {
		return o, fmt.Errorf("%w: the local disk failed: %v", ErrNotUpToDate, e.failed)
	}
	for _, p := range e.order {
		if p.conn == Connected && p.role == Primary && !e.cfg.AllowTwoPrimaries {
			return o, fmt.Errorf("%w: node %d (demote it first, or allow two primaries)", ErrPeerPrimary, p.id)
		}
		if p.repl == SyncTarget && !force {
			return o, fmt.Errorf("%w: resync from node %d is not finished (data Inconsistent)", ErrNotUpToDate, p.id)
		}
		if p.repl == PausedSyncT && !p.pausedSameGen && !force {
			return o, fmt.Errorf("%w: node %d holds newer data (promote it instead, or promote this node with --force to discard it)", ErrNotUpToDate, p.id)
		}
		if g := e.lacksSyncToward(p); g != 0 && !force {
			return o, fmt.Errorf("%w: node %d is resyncing towards generation %x, which this node does not have: its source holds newer data (promote that node, or promote this node with --force to discard it)", ErrNotUpToDate, p.id, g)
		}
	}
	if !e.Quorate() && !force {
		return o, fmt.Errorf("%w: this node reaches %d of %d nodes, not a majority (promote with --force to override)", ErrNoQuorum, e.reachable(), len(e.cfg.Peers)+1)
	}
	peers := e.needsFencing()
	if len(peers) > 0 && !force {
		return o, &NeedsFencingError{Peers: peers}
	}
	if e.unsure {
		// needsFencing counts a connected peer as known; a Consistent
		// disk needs it compared too.
		for _, p := range e.order {
			if p.conn == Connected && !p.decided && !force {
				return o, fmt.Errorf("%w: disk is Consistent and the handshake with node %d is not finished; retry in a moment", ErrNotUpToDate, p.id)
			}
		}
		// As DRBD: a Consistent disk becomes UpToDate once no unreachable
		// peer can hold newer data (or the operator says so).
		before := e.Disk()
		e.unsure = false
		why := "every unreachable peer is outdated or fenced"
		if len(peers) > 0 {
			why = "promoted with --force"
		}
		e.event(&o, "disk", before.String(), e.Disk().String(), why)
	}
	disk := e.Disk()
	forced := false
	if disk != UpToDate {
		if !force {
			return o, fmt.Errorf("%w: disk is %v; promote with --force to make this node's data the valid copy", ErrNotUpToDate, disk)
		}
		forced = true
	}
	oldRole := e.role
	e.role = Primary
	// (a promotion makes this node's data the one that counts: whatever
	// it lost as an earlier primary no longer marks it)
	e.gen.Primary, e.gen.LostQuorum = true, false
	// A generation this node heard only announced is its own now: its
	// writes and the resyncs it sources are in it. (A peer holding it as
	// taken, with writes of the old primary, would have made this node
	// its paused sync target and refused this promotion.)
	e.gen.Pending = false
	// Promoted, its data is the reference: a crash as secondary before no
	// longer makes it a resync target.
	e.gen.CrashedSecondary = false
	if e.cfg.Quorum == QuorumOff {
		// Without quorum writes do not wait for a generation to be
		// recorded by a majority (tentativePrimary): from the first one
		// acknowledged it is not void (uuid.Side.Uncommitted).
		e.gen.Uncommitted = false
	}
	if forced {
		e.gen.Consistent, e.gen.UpToDate, e.gen.SyncToward = true, true, 0
		e.gen.History = pushHistory(e.gen.History, e.gen.Current)
		e.gen.Current, e.gen.Tentative, e.gen.Uncommitted, e.gen.Pending = e.freshUUID(), false, false, false
		for _, p := range e.order {
			if p.conn == Connected {
				o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "forced promotion started a new generation; reconnecting to resync"})
			}
		}
	}
	// Data the absent peers will not get begins a new generation at the
	// first write (rotateForAbsent).
	if err := e.persist(); err != nil {
		e.role, e.gen.Primary = oldRole, false
		e.diskFailed(&o, err)
		return o, fmt.Errorf("promote: write metadata: %w", err)
	}
	e.event(&o, "role", oldRole.String(), e.role.String(), map[bool]string{true: "forced", false: ""}[forced])
	if forced {
		e.event(&o, "disk", disk.String(), e.Disk().String(), "forced promotion")
	} else {
		// With several peers every connection compares data again, now
		// with this node as the primary: what a secondary knew of its
		// peers (their disk states, what they miss) may be stale. A peer
		// is in sync with a primary only through a handshake with it as
		// primary. A waiting resync can run now. (Two primaries stay
		// connected: a handshake between them cannot resync.)
		all := e.multi() && !e.cfg.AllowTwoPrimaries
		for _, p := range e.order {
			if all && p.counted() && e.cfg.Quorum != QuorumOff {
				e.rehandshake |= bit(p.id)
			}
			if p.conn == Connected && (all || p.paused() || !p.decided) {
				o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "promoted: comparing data again"})
			}
		}
	}
	e.announce(&o)
	return o, nil
}

// lacksSyncToward returns the generation a connected, Inconsistent peer is
// resyncing towards when the peer's resync started from a generation this
// node has (its current, or one in its history: this node moved on from
// it), or the peer grew from this node's current (it is in the history of
// a peer current this node does not know), and this node does not have
// it (0 otherwise). The peer's source then wrote data this node lacks,
// perhaps acknowledged with the peer as its only copy (it gave that
// primary quorum): promoted, this node would resync the peer from older
// data and lose it. A source that took its generation after this node's
// own looks the same as a branch this node superseded; only the first is
// safe to assume (the five-node simulation lost a write when the older
// peer was exempt). A peer from a generation this node never had is not
// counted: its resync is no evidence about this node's data. Nor does this
// node have a current generation it knows only as announced (Pending): its
// primary may have taken it after this node left and resynced the peer
// with writes this node never saw (the five-node simulation lost a write
// that way, seed 1795468207615324514). A generation superseded in
// this node's favour does not count (superseded).
func (e *Engine) lacksSyncToward(p *peer) uint64 {
	if p.conn != Connected || p.hello == nil || p.disk != Inconsistent {
		return 0
	}
	if grew := e.knows(p.current) || slices.Contains(p.hello.History, e.gen.Current); !grew {
		return 0
	}
	if g := p.toward; g != 0 && !e.has(g) && !e.superseded(g, e.has) {
		return g
	}
	return 0
}

// currentPending: the generation this node announces (State.Pending,
// HelloPending) is one a primary announced and had not taken: its own
// pending one, or, on a follower, its primary's as last heard.
func (e *Engine) currentPending() bool { return e.pendingGen != nil || e.gen.Pending }

// has reports whether this node holds the data of generation u: its
// current (unless known only as announced: Pending) or one it moved on
// from.
func (e *Engine) has(u uint64) bool {
	return e.knows(u) && !(u == e.gen.Current && e.gen.Pending)
}

// superseded reports that a connected node holding g as its current
// generation is itself resyncing towards one of a line of data (has: this
// node's, or a handshake source's): the handshake that made it a target
// already judged g expendable against that line (g was tentative or
// uncommitted there, or a split-brain policy or an operator discarded
// it). A resync towards g elsewhere is then no evidence of data that line
// must keep (the default simulation, seed 1795469323295058372: a crashed
// primary's uncommitted generation, which it was itself giving up to
// another primary's, blocked every promotion and resync through its own
// earlier sync target).
func (e *Engine) superseded(g uint64, has func(uint64) bool) bool {
	return slices.ContainsFunc(e.order, func(q *peer) bool {
		return q.conn == Connected && q.hello != nil && q.disk == Inconsistent && q.current == g && q.toward != 0 && has(q.toward)
	})
}

// knows reports whether u is this node's current generation or one of
// its history.
func (e *Engine) knows(u uint64) bool {
	return u == e.gen.Current || slices.Contains(e.gen.History, u)
}

// Demote makes this node secondary. The caller must have stopped new
// writes; writes in flight finish.
func (e *Engine) Demote() (Output, error) {
	var o Output
	err := e.demote(&o, "")
	return o, err
}

func (e *Engine) demote(o *Output, reason string) error {
	if e.role == Secondary {
		return nil
	}
	for _, p := range e.order {
		if len(p.tl) > 0 {
			return fmt.Errorf("%w: node %d has not written %d of them", ErrWritesInFlight, p.id, len(p.tl))
		}
	}
	e.maybeCommitGeneration(o, true)
	// Writes still held for a generation no peer recorded: in doubt.
	e.releaseHeld(o, true)
	e.rehandshake = 0
	old := e.role
	e.role = Secondary
	e.gen.Primary = false
	if err := e.persist(); err != nil {
		e.diskFailed(o, err)
	}
	e.event(o, "role", old.String(), e.role.String(), reason)
	// A secondary sends no resync data (mesh.go); a handshake under way
	// used the old role.
	for _, p := range e.order {
		if e.multi() && p.conn == Connected && (p.repl == SyncSource || !p.decided || p.repl == WFBitmap && p.decision.IsSource()) {
			o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "demoted: comparing data again"})
		}
	}
	e.announce(o)
	return nil
}

// announce tells connected peers our role, disk state and generation, and
// a primary its in-sync set.
func (e *Engine) announce(o *Output) {
	s := e.state()
	e.announced.mask, e.announced.current, e.announced.pending, e.announced.uncommitted = s.InSync, s.Current, s.Pending, s.Uncommitted
	for _, id := range e.cfg.Peers {
		p := e.peers[id]
		if p.conn == Connected && p.hello != nil {
			c := *s
			o.Sends = append(o.Sends, Send{Peer: id, Msg: &c})
		}
	}
}

// state is the State this node announces.
func (e *Engine) state() *wire.State {
	var mask uint32
	if e.role == Primary {
		mask = e.inSyncMask()
	}
	s := &wire.State{Role: uint8(e.role), Disk: uint8(e.Disk()), Current: e.announcedCurrent(), InSync: mask, Pending: e.currentPending(), Uncommitted: e.uncommittedPrimary()}
	if !e.gen.Consistent {
		s.SyncToward = e.gen.SyncToward
	}
	return s
}
