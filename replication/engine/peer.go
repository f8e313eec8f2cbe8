package engine

import (
	"fmt"
	"slices"

	"github.com/replicad/replicad/replication/uuid"
	"github.com/replicad/replicad/replication/wire"
)

type peer struct {
	id    uint32
	slot  int
	proto byte

	conn ConnState
	repl ReplState
	role Role
	disk DiskState

	standAlone    bool // do not reconnect (admin, split brain)
	fencing       bool // the fence-peer handler runs for this peer
	discardMyData bool // one-shot: resolve a split brain by discarding our data
	lastErr       string
	// lastEnd is why the last connection ended, kept after the next
	// one comes up (lastErr is cleared then).
	lastEnd string

	helloSent bool
	hello     *wire.Hello // theirs
	decision  uuid.Decision
	decided   bool // the handshake reached a decision (NoSync is the zero Decision)
	// current and toward are the peer's current generation and, while it
	// is Inconsistent, the one its resync is bringing it to, as its latest
	// Hello or State said.
	current, toward uint64
	// uncommitted: the peer, a primary, said its current generation is
	// not yet recorded by enough nodes (commitSize; State.Uncommitted,
	// HelloUncommitted).
	uncommitted bool
	// pending: the peer's current generation is one its primary had
	// announced and not yet taken when the peer last heard from it (or
	// the peer is that primary): the peer holds the data of the one
	// before it (State.Pending, HelloPending).
	pending bool
	// doneRecv: this node, its sync target, received its SyncDone;
	// doneLater holds the generations it took since, oldest first, as
	// recorded from its States while the SyncDone was being applied
	// (adoptGeneration ends the resync at the newest).
	doneRecv  bool
	doneLater []uint64
	// confirmed: the peer's State arrived after the decision, so its side
	// reached one too (it sends a State when it decides; a peer that
	// refuses disconnects instead). Only then does it count for quorum.
	confirmed bool
	bmSent    bool
	bmRecv    bool

	// Sending side of replicated writes.
	seq      uint64 // last sequence number assigned
	sent     uint64 // highest sequence written to the socket
	recvAck  uint64
	writeAck uint64
	tl       []tlEntry // writes the peer has not acknowledged as written
	// sentGids: writes sent and not yet confirmed to the peer (mesh.go).
	sentGids []seqGid

	// Receiving side.
	rxSeq uint64
	// appliedSeq is the last of the peer's writes whose apply began here
	// (they apply in order); local writes carry it to the peer.
	appliedSeq uint64
	// incoming are the peer's received writes whose apply has not begun,
	// when this node resolves conflicts with it (see conflict.go).
	incoming []incoming
	// From a primary peer (mesh.go): its in-sync set, and its writes not
	// yet confirmed written everywhere.
	inSync      uint32
	inSyncKnown bool
	unconfirmed []unconfirmed
	// sentHello is the Hello this node sent: the decision uses what it
	// said, as the peer does.
	sentHello *wire.Hello
	// pausedSameGen: a paused resync between nodes of the same
	// generation, neither a crashed primary, both knowing it taken or
	// both only announced, both or neither a crashed secondary: either
	// may be promoted and become the source.
	pausedSameGen bool

	// link counts connections, so results of work started on an earlier
	// connection (Applied, resync reads) are recognised and dropped.
	link uint64

	rs         resync
	verify     verify
	lastVerify VerifyResult
}

// tlEntry is a write in the transfer log.
type tlEntry struct {
	seq, gid uint64
	off, n   int64
	w        *write // nil once the write completed
	owner    *write
}

// replicating: application writes go to the peer (instead of its bitmap).
func (p *peer) replicating() bool {
	return p.conn == Connected && p.decided && p.repl != ReplOff && !p.paused()
}

// Connected reports that an authenticated connection to peer is up: both
// sides send Hello.
func (e *Engine) Connected(peerID uint32) (Output, error) {
	var o Output
	p, err := e.peer(peerID)
	if err != nil {
		return o, err
	}
	e.resetLink(p)
	old := p.conn
	p.conn = Connected
	p.lastErr = ""
	e.peerEvent(&o, p, "connection", old.String(), p.conn.String(), "")
	p.sentHello = e.hello(p)
	o.Sends = append(o.Sends, Send{Peer: peerID, Msg: p.sentHello})
	p.helloSent = true
	e.quorumChanged(&o)
	return o, nil
}

func (e *Engine) hello(p *peer) *wire.Hello {
	g := e.gen
	if e.pendingGen != nil {
		// A primary shows the generation it announced as taken: a peer
		// that took it and then lost this node is no newer than it, and
		// one that did not misses what the commit will mark for it.
		g = g.next(e.pendingGen.uuid, e.peerMask()&^e.inSyncMask())
	}
	s := g.Slots[p.slot]
	h := &wire.Hello{
		Version: wire.Version, Volume: e.cfg.Volume, NodeID: e.cfg.NodeID,
		DataSize: e.store.Size(), Granularity: uint32(e.store.Granularity()), Protocol: p.proto,
		Role: uint8(e.role), Disk: uint8(e.Disk()),
		Current: g.Current, Bitmap: s.Bitmap, History: slices.Clone(g.History),
		ChangedBits: e.store.OutOfSyncBytes(p.slot) / e.store.Granularity(),
	}
	if !g.Consistent {
		h.SyncToward = g.SyncToward
	}
	if e.gen.CrashedPrimary {
		h.Flags |= wire.HelloCrashedPrimary
	}
	if e.gen.CrashedSecondary {
		h.Flags |= wire.HelloCrashedSecondary
	}
	if s.PrimaryBeforeSplit {
		h.Flags |= wire.HelloPrimaryBeforeSplit
	}
	if e.cfg.AllowTwoPrimaries {
		h.Flags |= wire.HelloAllowTwoPrimaries
	}
	if p.discardMyData {
		h.Flags |= wire.HelloDiscardMyData
	}
	if e.multi() {
		h.Flags |= wire.HelloMesh
	}
	if g.Tentative {
		h.Flags |= wire.HelloTentative
	}
	if g.Uncommitted {
		h.Flags |= wire.HelloUncommitted
	}
	if e.role == Primary && !e.Quorate() {
		h.Flags |= wire.HelloNoQuorum
	} else if e.role == Primary && !e.quorateWithoutGrace() {
		h.Flags |= wire.HelloGraceQuorum
	}
	if g.LostQuorum {
		h.Flags |= wire.HelloLostQuorum
	}
	if e.currentPending() {
		h.Flags |= wire.HelloPending
	}
	return h
}

func (e *Engine) resetLink(p *peer) {
	p.link++
	p.repl, p.role, p.disk = ReplOff, RoleUnknown, DUnknown
	p.helloSent, p.hello, p.decision, p.decided, p.confirmed, p.bmSent, p.bmRecv = false, nil, 0, false, false, false, false
	p.current, p.toward, p.uncommitted, p.pending = 0, 0, false, false
	p.doneRecv, p.doneLater = false, nil
	p.seq, p.sent, p.recvAck, p.writeAck, p.rxSeq, p.appliedSeq = 0, 0, 0, 0, 0, 0
	p.incoming, p.unconfirmed, p.sentGids = nil, nil, nil
	p.inSync, p.inSyncKnown = 0, false
	p.tl = nil
	p.rs = resync{}
	p.verify = verify{}
}

// Disconnected reports that the peer's connection is gone (or failed to
// come up). Writes it had not written are marked out of sync; writes and
// flushes waiting for it complete without it; a primary starts a new data
// generation for it.
func (e *Engine) Disconnected(peerID uint32, reason string) Output {
	var o Output
	p, err := e.peer(peerID)
	if err != nil {
		return o
	}
	wasConnected := p.conn == Connected
	wasReplicating := p.replicating()
	if wasConnected && !p.counted() {
		// A handshake after this node's promotion failed: the peer no
		// longer counts (quorumChanged below).
		e.rehandshake &^= bit(p.id)
	}
	inDoubt := e.inDoubtError(p)
	tl := p.tl
	var missed []*write
	for _, t := range tl {
		e.store.MarkOutOfSync(p.slot, t.off, t.n)
		e.written(&o, t, p.id)
		if t.w != nil {
			if inDoubt != nil && t.w.waiting&bit(p.id) != 0 {
				t.w.inDoubt = inDoubt
			}
			missed = append(missed, t.w)
		}
	}
	if p.role == Primary {
		e.primaryLost(&o, p)
	}
	for _, f := range e.flushesInOrder() {
		if f.waiting&bit(p.id) != 0 {
			if inDoubt != nil {
				f.inDoubt = inDoubt
			}
			f.waiting &^= bit(p.id)
			e.maybeCompleteFlush(&o, f)
		}
	}
	oldRepl, oldRole, oldDisk := p.repl, p.role, p.disk
	e.resetLink(p)
	oldConn := p.conn
	if p.standAlone {
		p.conn = StandAlone
	} else {
		p.conn = Connecting
	}
	if reason != "" && wasConnected {
		p.noteErr(reason)
	}
	e.peerEvent(&o, p, "connection", oldConn.String(), p.conn.String(), reason)
	e.peerEvent(&o, p, "replication", oldRepl.String(), p.repl.String(), "")
	e.peerEvent(&o, p, "peer-role", oldRole.String(), p.role.String(), "")
	e.peerEvent(&o, p, "peer-disk", oldDisk.String(), p.disk.String(), "")
	if wasReplicating && e.role == Primary {
		// The new generation waits for the first write the peer misses
		// (rotateForAbsent).
		e.gen.Slots[p.slot].PrimaryBeforeSplit = true
		if err := e.persist(); err != nil {
			e.diskFailed(&o, err)
		}
		e.outOfSyncForOthers(&o, p, tl)
		e.confirm(&o)
		e.maybeAnnounce(&o)
		if oldDisk == UpToDate || oldDisk == Consistent {
			e.startFencing(&o, p, "lost the connection while primary: "+reason)
		}
	}
	if len(missed) > 0 && e.role == Primary && e.multi() {
		// The peer misses these writes: that starts a new generation
		// (as a new write it misses would), and they complete only once
		// the peers in sync took it (or, with none, a sync target
		// records it), so that they, not the peer, count as newer if
		// this node dies: a sync target that has them but resyncs
		// towards the old generation would let the departed peer be
		// promoted and resync them away.
		if err := e.rotateForAbsent(&o); err == nil && e.newGenerationUnconfirmed() {
			for _, w := range missed {
				w.heldForGen = true
			}
		}
	}
	if e.tentativePrimary() && e.pendingGen == nil && !slices.ContainsFunc(e.order, (*peer).replicating) {
		// No peer left to record the uncommitted generation.
		e.releaseHeld(&o, true)
	}
	for _, w := range missed {
		e.satisfy(&o, w, p.id)
	}
	e.quorumChanged(&o)
	return o
}

// Configure sets a peer's administrative connection state: standAlone
// stops (re)connecting; discardMyData resolves the next split brain by
// discarding this node's changes (repctl connect --discard-my-data).
func (e *Engine) Configure(peerID uint32, standAlone, discardMyData bool) (Output, error) {
	var o Output
	p, err := e.peer(peerID)
	if err != nil {
		return o, err
	}
	p.standAlone, p.discardMyData = standAlone, discardMyData
	if standAlone && p.conn == Connected {
		o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "disconnected by the operator", StandAlone: true})
	}
	if standAlone && p.conn == Connecting {
		p.conn = StandAlone
		p.noteErr("disconnected by the operator")
		e.peerEvent(&o, p, "connection", Connecting.String(), p.conn.String(), p.lastErr)
		e.quorumChanged(&o)
	}
	if !standAlone && p.conn == StandAlone {
		old := p.conn
		p.conn = Connecting
		p.lastErr = ""
		e.peerEvent(&o, p, "connection", old.String(), p.conn.String(), "connect requested")
	}
	return o, nil
}

// WantsConnection reports whether the caller should keep trying to
// connect to the peer.
func (e *Engine) WantsConnection(peerID uint32) bool {
	p, ok := e.peers[peerID]
	return ok && p.conn == Connecting
}

// refuse ends a handshake for good: the peer stays StandAlone until an
// operator connects it again.
func (e *Engine) refuse(o *Output, p *peer, reason string) {
	e.rehandshakeDone(o, p)
	p.standAlone = true
	p.noteErr(reason)
	o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.Goodbye{Reason: reason}})
	o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: reason, StandAlone: true})
}

// stepDown demotes a primary without quorum that met a primary with quorum
// or newer data (DRBD's on-suspended-primary-outdated force-secondary) and
// reconnects to p. It can have written nothing since it lost quorum; its
// suspended I/O then fails (it is no longer primary). What it wrote before
// the majority has (protocol C), but its generation may have moved on
// alone: until it has resynced from a primary, a split brain is resolved
// by discarding its side. False if it cannot demote (writes in flight).
func (e *Engine) stepDown(o *Output, p *peer, why string) bool {
	if g := e.pendingGen; g != nil && !g.taken {
		e.pendingGen = nil // as maybeCommitGeneration drops it
		e.releaseHeld(o, true)
	}
	if err := e.demote(o, why); err != nil {
		return false
	}
	for _, q := range e.order {
		q.discardMyData = true
	}
	if !slices.ContainsFunc(o.Disconnects, func(d Disconnect) bool { return d.Peer == p.id }) {
		o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "demoted (" + why + "): comparing data again"})
	}
	return true
}

// side is what a Hello says for the generation comparison.
func side(h *wire.Hello) uuid.Side {
	return uuid.Side{
		NodeID: h.NodeID, Current: h.Current, Bitmap: h.Bitmap, History: h.History,
		CrashedPrimary: h.Flags&wire.HelloCrashedPrimary != 0, Primary: Role(h.Role) == Primary, NoQuorum: h.Flags&wire.HelloNoQuorum != 0,
		ChangedBits: h.ChangedBits, Tentative: h.Flags&wire.HelloTentative != 0, Uncommitted: h.Flags&wire.HelloUncommitted != 0,
		Pending: h.Flags&wire.HelloPending != 0, CrashedSecondary: h.Flags&wire.HelloCrashedSecondary != 0,
	}
}

// onHello decides what to do when the peer's Hello arrives.
func (e *Engine) onHello(o *Output, p *peer, h *wire.Hello) error {
	if p.hello != nil {
		return fmt.Errorf("%w: second hello", ErrProtocol)
	}
	p.hello = h
	p.role, p.disk = Role(h.Role), DiskState(h.Disk)
	p.current, p.toward, p.uncommitted, p.pending = h.Current, h.SyncToward, h.Flags&wire.HelloUncommitted != 0, h.Flags&wire.HelloPending != 0
	switch {
	case h.Version != wire.Version:
		e.refuse(o, p, fmt.Sprintf("peer speaks protocol version %d, this node %d", h.Version, wire.Version))
		return nil
	case h.Volume != e.cfg.Volume:
		e.refuse(o, p, fmt.Sprintf("peer offers volume %q, expected %q", h.Volume, e.cfg.Volume))
		return nil
	case h.NodeID != p.id:
		e.refuse(o, p, fmt.Sprintf("peer says it is node %d, expected %d", h.NodeID, p.id))
		return nil
	case h.DataSize != e.store.Size():
		e.refuse(o, p, fmt.Sprintf("size mismatch: peer's volume is %d bytes, this node's %d bytes", h.DataSize, e.store.Size()))
		return nil
	case int64(h.Granularity) != e.store.Granularity():
		e.refuse(o, p, fmt.Sprintf("bitmap granularity mismatch: peer %d, this node %d", h.Granularity, e.store.Granularity()))
		return nil
	case h.Protocol != p.proto:
		e.refuse(o, p, fmt.Sprintf("protocol mismatch: peer uses %c, this node %c", h.Protocol, p.proto))
		return nil
	case Role(h.Role) == Primary && e.role == Primary && !(e.cfg.AllowTwoPrimaries && h.Flags&wire.HelloAllowTwoPrimaries != 0):
		if !e.Quorate() && h.Flags&wire.HelloNoQuorum == 0 {
			if !e.stepDown(o, p, fmt.Sprintf("lost quorum and node %d is primary", p.id)) {
				o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "lost quorum and the peer is primary, but writes are in flight: retrying"})
			}
			return nil
		}
		if e.Quorate() && h.Flags&wire.HelloNoQuorum != 0 {
			// The peer steps down on this node's Hello (above, on its
			// side) and reconnects: wait for that.
			return nil
		}
		if e.cfg.Quorum != QuorumOff && !e.Quorate() && h.Flags&wire.HelloNoQuorum != 0 {
			// Neither can write. Each may keep the other from regaining
			// quorum (a secondary follows one primary: with four nodes
			// split two and two, each primary holds one follower for
			// good), so one steps down, the same one on both sides: the
			// one whose data the comparison makes the target, or with
			// equal data the higher node id. The other retries; once the
			// secondaries compare again, a primary can be had with
			// quorum. (A split brain still waits: stepping down would
			// discard this side's data.)
			if p.sentHello != nil {
				r := uuid.Compare(side(p.sentHello), side(h), uuid.Protocol(p.proto))
				yield := r.Decision.IsTarget() || r.Decision == uuid.NoSync && e.cfg.NodeID > p.id
				if yield && e.stepDown(o, p, fmt.Sprintf("no quorum, and node %d is primary without quorum too (%s)", p.id, r.Reason)) {
					return nil
				}
			}
			o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "both nodes are primary and neither has quorum: retrying"})
			return nil
		}
		if e.cfg.Quorum != QuorumOff && e.Quorate() && h.Flags&wire.HelloNoQuorum == 0 {
			// Both count a majority. Two majorities share a node, and a
			// secondary follows one primary: one side's count is stale
			// (its Hello was sent before it lost quorum, a link it
			// counts is broken one way, or its promotion's grace still
			// counts a peer), and it goes without quorum soon. Refusing
			// for good would leave this link StandAlone after that (the
			// five-node simulation found it): try again.
			o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "both nodes are primary and both count a majority: retrying until one of them loses it"})
			return nil
		}
		// Refused below, after the comparison: a split brain is reported
		// as such (divergence, handler).
	case Role(h.Role) == Primary && e.role != Primary && !e.cfg.AllowTwoPrimaries:
		// A secondary follows one primary: a second one (cut off, or
		// promoted elsewhere) must not use this node to regain quorum or
		// replicate beside the first.
		for _, q := range e.order {
			if q != p && q.conn == Connected && q.decided && q.role == Primary {
				o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: fmt.Sprintf("node %d is primary already and allow-two-primaries is off: retrying", q.id)})
				return nil
			}
		}
	}
	bothPrimary := Role(h.Role) == Primary && e.role == Primary
	// Both sides decide from the two Hellos. If this node changed since
	// it sent its own, the decision could differ from the peer's: start
	// over. Marked blocks count only by whether there are any (a write
	// the peer missed during the handshake turns "no sync" into a
	// bitmap resync; more marks do not change a bitmap decision, and the
	// bitmap exchange carries them).
	sent := p.sentHello
	// (Quorum that came from the grace becoming real does not count as a
	// change: the decision from the Hello as sent is only more careful.)
	if now := e.hello(p); now.Role != sent.Role || !sameDisk(now.Disk, sent.Disk) || now.Current != sent.Current || now.Bitmap != sent.Bitmap || now.Flags&^wire.HelloGraceQuorum != sent.Flags&^wire.HelloGraceQuorum || (now.ChangedBits == 0) != (sent.ChangedBits == 0) {
		o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "this node's state changed during the handshake: starting over"})
		return nil
	}
	me, them := side(sent), side(h)
	r := uuid.Compare(me, them, uuid.Protocol(p.proto))
	d := r.Decision
	why := fmt.Sprintf("rule %d: %s", r.Rule, r.Reason)
	// Disk states override generations when exactly one side is
	// Inconsistent (mid-resync): only the consistent side can be the
	// source, whatever the UUIDs say (as DRBD's sync handshake does).
	myDisk, peerDisk := DiskState(sent.Disk), DiskState(h.Disk)
	if (myDisk == Inconsistent) != (peerDisk == Inconsistent) && d != uuid.Unrelated {
		// ... unless it is a primary without quorum whose data is older
		// than what the Inconsistent side's interrupted resync was
		// bringing it to: it would overwrite newer blocks already synced
		// (the majority's, from the primary it promoted) with older ones,
		// and regain quorum through that node. (Without quorum there is no
		// telling a stale source from a legitimate one whose announced
		// generation was dropped; a primary with quorum is the majority's.
		// One whose quorum counts peers it is still handshaking with after
		// its promotion is not yet: promoted while the target followed
		// another primary, it may be the stale side. A generation whose
		// holder is itself resyncing towards the source's line is
		// superseded and does not count.)
		target, source, toward := h.NodeID, sent, h.SyncToward
		if myDisk == Inconsistent {
			target, source, toward = e.cfg.NodeID, h, sent.SyncToward
		}
		sourceHas := func(u uint64) bool { return u == source.Current || slices.Contains(source.History, u) }
		if toward != 0 && Role(source.Role) == Primary && source.Flags&(wire.HelloNoQuorum|wire.HelloGraceQuorum) != 0 &&
			!sourceHas(toward) && !e.superseded(toward, sourceHas) {
			why := fmt.Sprintf("node %d is Inconsistent, mid-resync towards generation %x, which node %d does not have", target, toward, source.NodeID)
			if target == p.id && e.role == Primary && e.cfg.Quorum != QuorumOff && !e.quorateWithoutGrace() && e.stepDown(o, p, "no quorum of its own and "+why) {
				return nil
			}
			o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: why + ": waiting for a node that has it"})
			return nil
		}
		full := d == uuid.SplitBrainDisconnect || d == uuid.SourceFull || d == uuid.TargetFull
		if myDisk == Inconsistent {
			d = pick(full, uuid.TargetFull, uuid.TargetBitmap)
			why = "this node is Inconsistent, the peer " + peerDisk.String() + ": the peer is the source (" + why + ")"
		} else {
			d = pick(full, uuid.SourceFull, uuid.SourceBitmap)
			why = "the peer is Inconsistent, this node " + myDisk.String() + ": this node is the source (" + why + ")"
		}
	}
	mine, theirs := sent.Flags&wire.HelloDiscardMyData != 0, h.Flags&wire.HelloDiscardMyData != 0
	if d == uuid.SplitBrainAuto || d == uuid.SplitBrainDisconnect {
		full := d == uuid.SplitBrainDisconnect
		switch {
		case mine && theirs:
			e.refuse(o, p, "split brain and both sides asked to discard their data")
			return nil
		case mine:
			d, why = pick(full, uuid.TargetFull, uuid.TargetBitmap), "split brain: this node discards its data (operator)"
		case theirs:
			d, why = pick(full, uuid.SourceFull, uuid.SourceBitmap), "split brain: the peer discards its data (operator)"
		case sent.Flags&wire.HelloLostQuorum != 0 && h.Flags&wire.HelloLostQuorum == 0:
			d, why = pick(full, uuid.TargetFull, uuid.TargetBitmap), "split brain: this node lost quorum while primary; the peer's side was the majority's"
		case h.Flags&wire.HelloLostQuorum != 0 && sent.Flags&wire.HelloLostQuorum == 0:
			d, why = pick(full, uuid.SourceFull, uuid.SourceBitmap), "split brain: the peer lost quorum while primary; this node's side was the majority's"
		case !full:
			v, reason := uuid.Resolve(
				uuid.SBSide{NodeID: e.cfg.NodeID, Primary: me.Primary, PrimaryBeforeSplit: sent.Flags&wire.HelloPrimaryBeforeSplit != 0, Changes: me.ChangedBits},
				uuid.SBSide{NodeID: h.NodeID, Primary: Role(h.Role) == Primary, PrimaryBeforeSplit: h.Flags&wire.HelloPrimaryBeforeSplit != 0, Changes: h.ChangedBits},
				e.cfg.Policies)
			switch v {
			case uuid.DiscardMine:
				d, why = uuid.TargetBitmap, "split brain resolved: "+reason
			case uuid.DiscardPeer:
				d, why = uuid.SourceBitmap, "split brain resolved: "+reason
			}
		}
	}
	switch d {
	case uuid.SplitBrainAuto, uuid.SplitBrainDisconnect:
		detail := fmt.Sprintf("split brain with node %d: this node changed %d blocks, the peer %d; %s", p.id, me.ChangedBits, them.ChangedBits, why)
		if d == uuid.SplitBrainDisconnect {
			detail += "; only a full sync can resolve it"
		}
		e.refuse(o, p, detail+"; resolve with `repctl connect --discard-my-data VOLUME` on the node whose changes should be lost")
		o.Handlers = append(o.Handlers, Handler{Name: "split-brain", Peer: p.id, Detail: detail})
		return nil
	case uuid.Unrelated:
		e.refuse(o, p, "unrelated data: the nodes share no generation ("+why+")")
		return nil
	}
	if bothPrimary && !(e.cfg.AllowTwoPrimaries && h.Flags&wire.HelloAllowTwoPrimaries != 0) {
		e.refuse(o, p, "both nodes are primary and allow-two-primaries is off")
		return nil
	}
	if d.IsTarget() && e.role == Primary {
		if e.cfg.Quorum != QuorumOff && !e.Quorate() && e.stepDown(o, p, fmt.Sprintf("lost quorum and node %d holds newer data", p.id)) {
			return nil
		}
		e.refuse(o, p, "this node is primary but would have to become the sync target ("+why+")")
		return nil
	}
	p.discardMyData = false
	p.decision, p.decided = d, true
	if d == uuid.NoSync || d.IsSource() {
		// This node's data is at least the peer's: a Consistent disk is
		// UpToDate, and the State below says so (a peer that read
		// Consistent there would count it out of sync until the next).
		// A target stays Consistent until its resync makes it
		// Inconsistent, or, paused, until a primary is there.
		e.settleConsistent(o, p)
	}
	// The peer decides from the same two Hellos, but it may refuse what
	// this node accepts (it follows another primary, or its state changed
	// since its Hello): it counts for quorum once its State says it
	// decided too.
	o.Sends = append(o.Sends, Send{Peer: p.id, Msg: e.state()})
	if d != uuid.NoSync && Role(sent.Role) != Primary && Role(h.Role) != Primary && (e.multi() || h.Flags&wire.HelloMesh != 0) {
		// Resync data comes only from a primary (mesh.go). Both sides see
		// the same roles in the Hellos and reach mirrored decisions.
		old := p.repl
		p.repl = pick(d.IsTarget(), PausedSyncT, PausedSyncS)
		p.pausedSameGen = r.Rule == 2 && !me.CrashedPrimary && !them.CrashedPrimary && me.Pending == them.Pending && me.SecondaryCrashed() == them.SecondaryCrashed()
		e.peerEvent(o, p, "replication", old.String(), p.repl.String(), why+"; neither node is primary: the resync waits for a promotion")
		return nil
	}
	return e.startDecision(o, p, d, why)
}

// sameDisk: two Hellos' disk states would lead to the same decision.
// Consistent and UpToDate do (the generations decide); a node that
// settled from Consistent in one handshake need not restart the others.
func sameDisk(a, b uint8) bool {
	norm := func(d uint8) uint8 {
		if DiskState(d) == Consistent {
			return uint8(UpToDate)
		}
		return d
	}
	return norm(a) == norm(b)
}

func pick[T any](cond bool, a, b T) T {
	if cond {
		return a
	}
	return b
}

// startDecision moves a connected peer into replication: no sync, or a
// bitmap exchange and then a resync, or a full sync.
func (e *Engine) startDecision(o *Output, p *peer, d uuid.Decision, why string) error {
	if d == uuid.NoSync && p.disk == Consistent {
		// It holds this node's data, and the same decision on its side
		// makes it UpToDate (its next State says so): count it in sync
		// from now, as before it was Consistent.
		p.disk = UpToDate
		e.peerEvent(o, p, "peer-disk", Consistent.String(), UpToDate.String(), "same data as this node")
	}
	err := e.decide(o, p, d, why)
	e.settleConsistent(o, p)
	return err
}

// settleConsistent: this node compared generations with p and decided:
// a Consistent disk is what that made it (a target's Inconsistent disk
// said so already).
func (e *Engine) settleConsistent(o *Output, p *peer) {
	if !e.unsure {
		return
	}
	before := e.Disk()
	e.unsure = false
	if before == Consistent && e.Disk() != Consistent {
		e.event(o, "disk", before.String(), e.Disk().String(), fmt.Sprintf("compared data with node %d", p.id))
		e.announce(o)
	}
}

func (e *Engine) decide(o *Output, p *peer, d uuid.Decision, why string) error {
	oldRepl := p.repl
	switch d {
	case uuid.NoSync:
		p.repl = Established
		e.peerEvent(o, p, "replication", oldRepl.String(), p.repl.String(), why)
		if e.gen.LostQuorum && p.hello.Flags&wire.HelloLostQuorum == 0 {
			// it holds the same data as a node that did not lose quorum:
			// nothing of its own is left to lose to a split brain
			e.gen.LostQuorum = false
			if err := e.persist(); err != nil {
				e.diskFailed(o, err)
			}
		}
		if peerDisk := DiskState(p.hello.Disk); e.Disk() == Outdated && (peerDisk == UpToDate || peerDisk == Consistent) {
			// Same data as an UpToDate peer (or a Consistent one: it was
			// UpToDate and nobody outdated it); as DRBD, an Outdated disk
			// that needs no resync takes the peer's state. Left Outdated
			// it would replicate and never follow a primary's generations.
			e.gen.UpToDate = true
			if err := e.persist(); err != nil {
				e.diskFailed(o, err)
				return nil
			}
			e.event(o, "disk", Outdated.String(), UpToDate.String(), fmt.Sprintf("in sync with node %d, which is UpToDate", p.id))
			e.announce(o)
		}
		return e.inSync(o, p)
	case uuid.SourceFull, uuid.TargetFull:
		e.store.MarkAllOutOfSync(p.slot)
		p.bmSent, p.bmRecv = true, true
		if d == uuid.TargetFull {
			if err := e.becomeInconsistent(o, p); err != nil {
				return err
			}
		}
		return e.startSync(o, p, why)
	default: // bitmap-based: exchange bitmaps first
		p.repl = WFBitmap
		e.peerEvent(o, p, "replication", oldRepl.String(), p.repl.String(), why)
		if d.IsTarget() {
			if err := e.becomeInconsistent(o, p); err != nil {
				return err
			}
		}
		e.sendBitmap(o, p)
		return nil
	}
}

// bitmapChunkWords bounds a Bitmap message (before compression).
const bitmapChunkWords = 64 << 10

func (e *Engine) sendBitmap(o *Output, p *peer) {
	n := e.store.BitmapLen()
	for start := 0; ; start += bitmapChunkWords {
		words := e.store.BitmapWords(p.slot, start, bitmapChunkWords)
		last := start+len(words) >= n
		o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.Bitmap{StartWord: uint64(start), Last: last, Words: words}})
		if last {
			break
		}
	}
	p.bmSent = true
}

func (e *Engine) onBitmap(o *Output, p *peer, b *wire.Bitmap) error {
	if p.repl != WFBitmap || p.bmRecv {
		return fmt.Errorf("%w: bitmap while %v", ErrProtocol, p.repl)
	}
	if b.StartWord > uint64(e.store.BitmapLen()) || uint64(len(b.Words)) > uint64(e.store.BitmapLen())-b.StartWord {
		return fmt.Errorf("%w: bitmap words [%d, +%d) beyond %d", ErrProtocol, b.StartWord, len(b.Words), e.store.BitmapLen())
	}
	e.store.MergeBitmap(p.slot, int(b.StartWord), b.Words)
	if b.Last {
		p.bmRecv = true
		return e.startSync(o, p, "bitmaps exchanged")
	}
	return nil
}

// becomeInconsistent starts a resync from p as its target; the data is
// then on its way to p's generation (SyncToward): the one it has taken,
// not one it only announced, which a crash or a lost quorum may drop.
func (e *Engine) becomeInconsistent(o *Output, p *peer) error {
	toward := p.hello.Current
	if p.hello.Flags&wire.HelloPending != 0 {
		toward = 0
		if len(p.hello.History) > 0 {
			toward = p.hello.History[0]
		}
	}
	if !e.gen.Consistent {
		if e.gen.SyncToward != toward {
			// (and says so: the State sent on deciding showed the old
			// one, and the source's may be tentative until a target
			// records it)
			e.gen.SyncToward = toward
			if err := e.persist(); err != nil {
				e.diskFailed(o, err)
				return nil
			}
			e.announce(o)
		}
		return nil
	}
	old := e.Disk()
	e.gen.Consistent, e.gen.SyncToward = false, toward
	if err := e.persist(); err != nil {
		e.diskFailed(o, err)
		return nil
	}
	e.event(o, "disk", old.String(), e.Disk().String(), "becoming a sync target")
	e.announce(o)
	return nil
}

// inSync records that the peer has our data: its bitmap generation ends.
func (e *Engine) inSync(o *Output, p *peer) error {
	s := &e.gen.Slots[p.slot]
	s.PrimaryBeforeSplit = false
	if s.Bitmap != 0 || s.Outdated {
		e.gen.History = pushHistory(e.gen.History, s.Bitmap)
		s.Bitmap, s.Outdated = 0, false
		if err := e.persist(); err != nil {
			e.diskFailed(o, err)
		}
	}
	return nil
}

func bit(id uint32) uint32 { return 1 << id }

// noteErr records why the connection ended or was refused.
func (p *peer) noteErr(reason string) {
	p.lastErr, p.lastEnd = reason, reason
}
