package engine

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/replicad/replicad/replication/wire"
)

// More than two nodes: one primary P replicating to several secondaries
// over a full mesh. P's bitmaps record what each absent peer misses; the
// secondaries must know it too, because P may die and one of them take
// over. The rules (each keeps "every block two nodes hold differently is
// marked on one of them, in its slot for the other"):
//
//   - In-sync set. P announces (State.InSync) which peers are in sync with
//     it: Established with UpToDate data. A secondary applying P's writes
//     (or resync data) marks them for every peer outside that set: those
//     peers do not get them (mark).
//   - Leaving. When a peer X leaves P, P marks X's unacknowledged writes
//     and tells the other secondaries with OutOfSync (outOfSyncForOthers):
//     X may lack them although it was in the set.
//   - Generations. P starts a new generation on its first write that an
//     absent peer misses (lazily: a primary that loses its peers and stops
//     writing keeps the generation, so it can rejoin as a plain sync
//     target). In-sync secondaries follow it and record, for the peers
//     outside the set, the generation their bits start from, as P does.
//     When P says X is in sync, a secondary in sync too forgets what it
//     marked for X: both hold P's data (followPrimary).
//   - Losing P. Writes in flight when P dies reached some secondaries and
//     not others. Each secondary keeps the writes P has not confirmed
//     (wire.Confirmed: every peer they went to wrote them) and, when it
//     loses P, marks them for every other peer (primaryLost).
//   - Resync data comes only from a primary: two secondaries that find they
//     differ wait (PausedSyncS/PausedSyncT) until one is promoted, then
//     they compare again and the primary brings the other up to date. A
//     secondary source would race the primary's writes to the target on
//     another connection. A node whose paused peer holds a newer
//     generation refuses promotion: it would lose that data.
//
// With one peer none of this runs: nothing else to mark for.

// multi: the volume has more than one peer.
func (e *Engine) multi() bool { return len(e.cfg.Peers) > 1 }

// inSyncMask is the set of nodes in sync with this primary: itself and the
// peers Established (or verifying) with UpToDate data.
func (e *Engine) inSyncMask() uint32 {
	m := bit(e.cfg.NodeID)
	for _, p := range e.order {
		if p.conn == Connected && p.established() && p.disk == UpToDate {
			m |= bit(p.id)
		}
	}
	return m
}

// established: in sync on this connection (verifying counts).
func (p *peer) established() bool {
	return p.repl == Established || p.repl == VerifyS || p.repl == VerifyT
}

// maybeAnnounce tells the peers a primary's new in-sync set or generation.
func (e *Engine) maybeAnnounce(o *Output) {
	if e.role != Primary {
		return
	}
	e.maybeCommitGeneration(o, false)
	if e.inSyncMask() == e.announced.mask && e.announcedCurrent() == e.announced.current && (e.pendingGen != nil) == e.announced.pending && e.uncommittedPrimary() == e.announced.uncommitted {
		return
	}
	e.announce(o)
}

// markForOthers marks [off, off+n), received from p, for every other peer
// that p (a primary) did not say is in sync with it, and for those in
// lagging (in sync, but p said they may not hold this data yet:
// wire.ResyncData.Lagging).
func (e *Engine) markForOthers(p *peer, off, n int64, lagging uint32) {
	for _, q := range e.order {
		if q == p || (p.inSyncKnown && p.inSync&bit(q.id) != 0 && lagging&bit(q.id) == 0) {
			continue
		}
		e.store.MarkOutOfSync(q.slot, off, n)
	}
}

// followPrimary handles a primary's State: this node follows its new
// generation (tentatively while the primary has not taken it, pending, or
// not seen enough nodes record it, uncommitted) and forgets what it marked
// for peers now in sync with both, if this node is in sync with it.
func (e *Engine) followPrimary(o *Output, p *peer, mask uint32, current uint64, pending, uncommitted bool) {
	p.inSync, p.inSyncKnown = mask, true
	if !p.established() || e.Disk() != UpToDate || mask&bit(e.cfg.NodeID) == 0 {
		return
	}
	changed := false
	if current != e.gen.Current {
		e.gen = e.gen.next(current, e.peerMask()&^mask&^bit(p.id))
		changed = true
	}
	if tentative := pending || uncommitted; e.gen.Tentative != tentative || e.gen.Uncommitted != uncommitted || e.gen.Pending != pending {
		e.gen.Tentative, e.gen.Uncommitted, e.gen.Pending = tentative, uncommitted, pending
		changed = true
	}
	for _, q := range e.order {
		if q == p || mask&bit(q.id) == 0 {
			continue
		}
		sl := &e.gen.Slots[q.slot]
		if sl.Bitmap != 0 || sl.Outdated || sl.PrimaryBeforeSplit {
			sl.Bitmap, sl.Outdated, sl.PrimaryBeforeSplit = 0, false, false
			changed = true
		}
		e.store.ClearInSync(q.slot, 0, e.store.Size())
		if q.repl == PausedSyncS || q.repl == PausedSyncT {
			o.Disconnects = append(o.Disconnects, Disconnect{Peer: q.id, Reason: fmt.Sprintf("both in sync with primary node %d now: comparing again", p.id)})
		}
	}
	if changed {
		if err := e.persist(); err != nil {
			e.diskFailed(o, err)
			return
		}
		// The primary waits for this to take the generation itself.
		e.announce(o)
	}
}

// noteUnconfirmed records a write received from a primary until it
// confirms that every peer wrote it.
func (e *Engine) noteUnconfirmed(p *peer, seq uint64, off, n int64) {
	if e.multi() && p.role == Primary {
		p.unconfirmed = append(p.unconfirmed, unconfirmed{seq: seq, off: off, n: n})
	}
}

// unconfirmed is a write received from a primary that not every peer is
// known to hold.
type unconfirmed struct {
	seq    uint64
	off, n int64
}

func (e *Engine) onConfirmed(p *peer, c *wire.Confirmed) error {
	if c.Seq > p.rxSeq {
		return fmt.Errorf("%w: confirmed %d beyond the last write %d", ErrProtocol, c.Seq, p.rxSeq)
	}
	i := 0
	for i < len(p.unconfirmed) && p.unconfirmed[i].seq <= c.Seq {
		i++
	}
	p.unconfirmed = p.unconfirmed[i:]
	return nil
}

func (e *Engine) onOutOfSync(o *Output, p *peer, m *wire.OutOfSync) error {
	q, ok := e.peers[m.Node]
	if !ok || q == p {
		return fmt.Errorf("%w: out-of-sync for node %d", ErrProtocol, m.Node)
	}
	for _, r := range m.Ranges {
		if r.Offset+r.Length > uint64(e.store.Size()) {
			return fmt.Errorf("%w: out-of-sync range [%d, +%d) outside the volume", ErrProtocol, r.Offset, r.Length)
		}
		e.store.MarkOutOfSync(q.slot, int64(r.Offset), int64(r.Length))
	}
	if err := e.store.PersistBitmaps(); err != nil {
		e.diskFailed(o, err)
	}
	return nil
}

// outOfSyncForOthers: peer x left this primary with writes unacknowledged
// (tl); the other peers mark them for x.
func (e *Engine) outOfSyncForOthers(o *Output, x *peer, tl []tlEntry) {
	if !e.multi() || len(tl) == 0 {
		return
	}
	var rs []wire.Range
	for _, t := range tl {
		if k := len(rs) - 1; k >= 0 && rs[k].Offset+rs[k].Length == uint64(t.off) {
			rs[k].Length += uint64(t.n)
			continue
		}
		rs = append(rs, wire.Range{Offset: uint64(t.off), Length: uint64(t.n)})
	}
	for _, q := range e.order {
		if q == x || !q.replicating() {
			continue
		}
		for start := 0; start < len(rs); start += wire.MaxRanges {
			o.Sends = append(o.Sends, Send{Peer: q.id, Msg: &wire.OutOfSync{Node: x.id, Ranges: rs[start:min(len(rs), start+wire.MaxRanges)]}})
		}
	}
}

// primaryLost: this secondary lost the primary p. Writes from p that not
// every peer is known to hold are marked for every other peer, and the
// connections to other secondaries compare data again.
func (e *Engine) primaryLost(o *Output, p *peer) {
	if !e.multi() || e.role == Primary {
		return
	}
	for _, u := range p.unconfirmed {
		for _, q := range e.order {
			if q != p {
				e.store.MarkOutOfSync(q.slot, u.off, u.n)
			}
		}
	}
	if len(p.unconfirmed) > 0 {
		if err := e.store.PersistBitmaps(); err != nil {
			e.diskFailed(o, err)
		}
	}
	for _, q := range e.order {
		if q != p && q.conn == Connected && q.role != Primary && (len(p.unconfirmed) > 0 || q.paused()) {
			o.Disconnects = append(o.Disconnects, Disconnect{Peer: q.id, Reason: fmt.Sprintf("lost primary node %d: comparing data again", p.id)})
		}
	}
}

func (p *peer) paused() bool { return p.repl == PausedSyncS || p.repl == PausedSyncT }

// unapplied tracks, on a primary with several peers, which peers have yet
// to write each replicated write (by gid), to confirm writes to the
// secondaries in order.
type unapplied struct {
	gid     uint64
	waiting uint32
}

// trackWrite registers a new replicated write sent to the peers in mask.
func (e *Engine) trackWrite(mask uint32) uint64 {
	if !e.multi() {
		return 0
	}
	e.gid++
	if mask != 0 {
		e.unapplied = append(e.unapplied, unapplied{gid: e.gid, waiting: mask})
	}
	return e.gid
}

// peerWrote: peer id wrote (or will never write) the write gid.
func (e *Engine) peerWrote(gid uint64, id uint32) {
	if len(e.unapplied) == 0 || gid < e.unapplied[0].gid {
		return
	}
	// gids are consecutive but writes sent to nobody are not tracked:
	// search.
	i := int(min(gid-e.unapplied[0].gid, uint64(len(e.unapplied)-1)))
	for i > 0 && e.unapplied[i].gid > gid {
		i--
	}
	if e.unapplied[i].gid == gid {
		e.unapplied[i].waiting &^= bit(id)
	}
}

// confirm sends each peer how far its writes are written everywhere.
func (e *Engine) confirm(o *Output) {
	if !e.multi() {
		return
	}
	for len(e.unapplied) > 0 && e.unapplied[0].waiting == 0 {
		e.unapplied = e.unapplied[1:]
	}
	done := e.gid
	if len(e.unapplied) > 0 {
		done = e.unapplied[0].gid - 1
	}
	for _, p := range e.order {
		i := 0
		for i < len(p.sentGids) && p.sentGids[i].gid <= done {
			i++
		}
		if i == 0 {
			continue
		}
		seq := p.sentGids[i-1].seq
		p.sentGids = p.sentGids[i:]
		if p.replicating() {
			o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.Confirmed{Seq: seq}})
		}
	}
}

// seqGid maps a peer's write sequence to the write's gid.
type seqGid struct{ seq, gid uint64 }

// rotateForAbsent starts a new generation before the first write that a
// peer without a bitmap generation will miss. With peers in sync it is
// two-phase: they take the new generation first (and say so in their
// State), then this primary does. A primary that crashed in between still
// has the old generation, which its peers know; had it taken the new one
// first, a peer promoted after the crash would not know it and the two
// would look like a split brain. Writes meanwhile go on under the old
// generation, marked for the absent peer as always; none completes
// under protocol C before the peer that acknowledges it took the new
// generation (its State comes before its WriteAck).
func (e *Engine) rotateForAbsent(o *Output) error {
	if e.pendingGen != nil || !e.Quorate() {
		// Without quorum nothing completes here that a generation would
		// have to record (writes are refused or in doubt).
		return nil
	}
	need := false
	for _, p := range e.order {
		if !p.replicating() && e.gen.Slots[p.slot].Bitmap == 0 {
			need = true
		}
	}
	if !need {
		return nil
	}
	if followers := e.inSyncMask() &^ bit(e.cfg.NodeID); e.multi() && followers != 0 {
		e.pendingGen = &pendingGen{uuid: e.freshUUID(), waiting: followers}
		e.announce(o)
		return nil
	}
	e.newGeneration(e.freshUUID())
	// With quorum, no peer in sync took it first: the peers giving this
	// node its quorum are sync targets, and none knows it yet. It is
	// uncommitted until enough nodes record it (commitIfRecorded), and
	// writes in it complete only then (startModify holds them). Should
	// this node die first, what it holds in it nobody acknowledged, and
	// against a node the majority moved on with it counts as the
	// generation before (uuid.Side.settled) instead of a split brain.
	// Without quorum a primary alone writes and acknowledges: its
	// generation is as real as its writes.
	e.gen.Tentative = e.cfg.Quorum != QuorumOff
	e.gen.Uncommitted = e.gen.Tentative
	if err := e.persist(); err != nil {
		e.diskFailed(o, err)
		return fmt.Errorf("new generation: %w", err)
	}
	e.maybeAnnounce(o)
	return nil
}

// A generation commits once enough nodes recorded it. Under quorum that
// is so many of the volume's nodes, this primary included, that every
// majority includes one of them (n+1 minus a majority: two of three or
// four nodes, three of five or six): a node promoted later with quorum
// reaches a majority, so at least one node that recorded the generation,
// and refuses promotion while that node holds newer data or resyncs
// towards it (Promote). So a primary that lacks a tentative generation
// under quorum shows it was never committed, and no write in it was
// acknowledged: the generation is void against it
// (uuid.Side.Uncommitted). Committing once the peers in sync took it, as
// earlier versions did, left that to chance with five nodes: the primary
// and its one peer in sync could hold acknowledged writes that the other
// three, a majority, lacked. Without quorum one peer recording it is
// enough, as a primary alone writes anyway.

// recorded reports whether enough nodes recorded this node's current
// generation to commit it: the peers connected now that have it as taken
// (a peer that heard it only announced, pending, holds the data of the
// one before it, and may have left before this node took it: it
// records nothing), or resync towards it, as their latest Hello or State
// said.
func (e *Engine) recorded() bool {
	n := 1
	for _, p := range e.order {
		if p.conn == Connected && p.disk != Failed && (p.current == e.gen.Current && !p.pending || p.toward == e.gen.Current) {
			n++
		}
	}
	if e.cfg.Quorum == QuorumOff {
		return n > 1
	}
	return n >= e.commitSize()
}

// commitSize is the number of nodes that must record a generation under
// quorum: the fewest that every majority of the volume's nodes meets, and
// at least two.
func (e *Engine) commitSize() int {
	nodes := len(e.cfg.Peers) + 1
	return max(2, nodes-(nodes/2+1)+1)
}

// commitIfRecorded commits a primary's tentative generation once enough
// nodes recorded it, and completes the writes held for it.
func (e *Engine) commitIfRecorded(o *Output) {
	if e.role != Primary || !e.gen.Tentative || !e.recorded() {
		return
	}
	e.gen.Tentative, e.gen.Uncommitted, e.gen.Pending = false, false, false
	if err := e.persist(); err != nil {
		e.diskFailed(o, err)
		return
	}
	if e.pendingGen == nil {
		e.releaseHeld(o, false)
	}
}

// newGenerationUnconfirmed reports a new generation that writes a departed
// peer missed must wait for: announced and not yet taken, or taken and
// not yet committed.
func (e *Engine) newGenerationUnconfirmed() bool {
	return e.pendingGen != nil || e.tentativePrimary()
}

// tentativePrimary: this node is a primary under quorum whose generation
// is not committed yet: writes in it wait. (A secondary that took a
// primary's announced generation tentatively under quorum keeps the mark
// when promoted, and its writes wait for the record too; one that took it
// from a primary without quorum keeps only the tentative mark, for the
// comparison, and its writes do not wait.)
func (e *Engine) tentativePrimary() bool {
	return e.role == Primary && e.gen.Uncommitted && e.cfg.Quorum != QuorumOff
}

// uncommittedPrimary: this node is a primary under quorum whose announced
// generation is not committed (pending, or taken and not yet recorded by
// enough nodes): its peers' copies stay tentative and void
// (State.Uncommitted).
func (e *Engine) uncommittedPrimary() bool {
	return e.role == Primary && e.cfg.Quorum != QuorumOff && e.newGenerationUnconfirmed()
}

// pendingGen is a generation announced to the in-sync peers and not yet
// taken by this primary: waiting holds the peers that have not taken it.
type pendingGen struct {
	uuid    uint64
	waiting uint32
	// taken: some peer took it.
	taken bool
}

// genTaken notes a peer's State: it may have taken the pending generation.
func (e *Engine) genTaken(p *peer, current uint64) {
	if g := e.pendingGen; g != nil && current == g.uuid {
		g.waiting &^= bit(p.id)
		g.taken = true
	}
}

// maybeCommitGeneration takes the pending generation once every peer
// still in sync has (or at once, with force: a primary demoting).
func (e *Engine) maybeCommitGeneration(o *Output, force bool) {
	g := e.pendingGen
	if g == nil {
		return
	}
	g.waiting &= e.inSyncMask()
	if g.waiting != 0 && !force {
		return
	}
	e.pendingGen = nil
	if !g.taken && e.cfg.Quorum != QuorumOff {
		// Every peer it waited for left before taking it. With quorum
		// this node writes only while a majority hears it, so nothing
		// it wrote under the old generation is its alone: keep the
		// old one (the next write that misses a peer starts another).
		// Taking it would make this node look changed since the old
		// generation to a primary the majority promotes: a split brain.
		e.releaseHeld(o, true)
		return
	}
	if e.role != Primary {
		e.releaseHeld(o, false)
		return
	}
	e.newGeneration(g.uuid)
	// Taken; under quorum committed once enough nodes record it (the
	// peers that took it may be fewer), and the writes held for it wait
	// until then.
	e.gen.Tentative = e.cfg.Quorum != QuorumOff
	e.gen.Uncommitted = e.gen.Tentative
	if err := e.persist(); err != nil {
		e.diskFailed(o, err)
	}
	if e.gen.Tentative {
		e.commitIfRecorded(o)
	} else {
		e.releaseHeld(o, false)
	}
}

// releaseHeld completes the writes held for the pending generation, which
// was taken, or dropped: then no peer in sync knows them as newer than a
// peer that left without them, and they fail as in doubt.
func (e *Engine) releaseHeld(o *Output, dropped bool) {
	var held []*write
	for _, w := range e.writes {
		if w.heldForGen {
			held = append(held, w)
		}
	}
	slices.SortFunc(held, func(a, b *write) int { return cmp.Compare(a.id, b.id) })
	for _, w := range held {
		w.heldForGen = false
		if dropped && w.inDoubt == nil {
			w.inDoubt = fmt.Errorf("%w: no peer took or recorded the new generation this write belongs to (a peer that left missed it, or it came while the generation was not yet recorded by enough nodes): the data may be lost at failover", ErrNoQuorum)
		}
		e.maybeCompleteWrite(o, w)
	}
}

// announcedCurrent is the generation a primary announces: the pending one
// if any.
func (e *Engine) announcedCurrent() uint64 {
	if e.pendingGen != nil {
		return e.pendingGen.uuid
	}
	return e.gen.Current
}
