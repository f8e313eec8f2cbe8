package engine

import (
	"fmt"
	"slices"

	"github.com/replicad/replicad/replication/uuid"

	"github.com/replicad/replicad/replication/wire"
)

// resync is a running resync's progress on the source or the target.
type resync struct {
	total    int64 // out-of-sync bytes when it started
	cursor   int64 // source: next byte offset to look at
	inflight int64 // source: bytes sent and not acknowledged
	passes   int
	// needData: ranges a checksum resync found different, to send as data.
	needData []span
	// dataRanges: ranges handed out that must go as data (not digests).
	dataRanges map[int64]bool
	sameBytes  int64
}

type span struct{ off, n int64 }

func (e *Engine) startSync(o *Output, p *peer, why string) error {
	old := p.repl
	p.rs = resync{total: e.store.OutOfSyncBytes(p.slot)}
	if p.decision.IsSource() {
		p.repl = SyncSource
		e.peerEvent(o, p, "replication", old.String(), p.repl.String(), why)
		if p.rs.total == 0 {
			return e.finishSync(o, p)
		}
		o.Resyncs = append(o.Resyncs, p.id)
		return nil
	}
	p.repl = SyncTarget
	e.peerEvent(o, p, "replication", old.String(), p.repl.String(), why)
	return nil
}

// NextResync returns the next range the sync source should send to peer:
// the first out-of-sync block at or after the cursor, extended over
// following out-of-sync blocks up to maxBytes. ok is false when nothing is
// left to send on this pass (the sender waits for acknowledgements). link
// identifies the connection; pass it to ResyncRead.
func (e *Engine) NextResync(peerID uint32, maxBytes int64) (off, n int64, link uint64, ok bool) {
	p, exists := e.peers[peerID]
	if !exists {
		return 0, 0, 0, false
	}
	if p.repl == VerifyS {
		v := &p.verify
		if v.cursor >= e.store.Size() {
			return 0, 0, 0, false
		}
		off, n = v.cursor, min(maxBytes, e.store.Size()-v.cursor)
		v.cursor += n
		v.inflight += n
		return off, n, p.link, true
	}
	if p.repl != SyncSource {
		return 0, 0, 0, false
	}
	if len(p.rs.needData) > 0 {
		s := p.rs.needData[0]
		p.rs.needData = p.rs.needData[1:]
		if p.rs.dataRanges == nil {
			p.rs.dataRanges = map[int64]bool{}
		}
		p.rs.dataRanges[s.off] = true
		p.rs.inflight += s.n
		return s.off, s.n, p.link, true
	}
	g := e.store.Granularity()
	off, found := e.store.NextOutOfSync(p.slot, p.rs.cursor)
	if !found {
		p.rs.cursor = e.store.Size()
		return 0, 0, 0, false
	}
	n = g
	for n < maxBytes && off+n < e.store.Size() {
		next, ok := e.store.NextOutOfSync(p.slot, off+n)
		if !ok || next != off+n {
			break
		}
		n += g
	}
	n = min(n, e.store.Size()-off)
	p.rs.cursor = off + n
	p.rs.inflight += n
	return off, n, p.link, true
}

// ResyncRead queues the data read for a range NextResync handed out. The
// caller must hold the range against application writes from before the
// read until this call, so the peer receives the two in the order the
// local disk saw them.
func (e *Engine) ResyncRead(peerID uint32, link uint64, off int64, data []byte, err error) Output {
	var o Output
	p, exists := e.peers[peerID]
	if !exists || p.link != link || (p.repl != SyncSource && p.repl != VerifyS) {
		return o
	}
	if err != nil {
		o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "reading local data for the peer failed: " + err.Error()})
		return o
	}
	switch {
	case p.repl == VerifyS:
		o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.Digest{Kind: wire.DigestVerify, Offset: uint64(off), Length: uint32(len(data)), Sums: e.sums(data)}})
	case e.cfg.Checksums && !p.rs.dataRanges[off]:
		o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.Digest{Kind: wire.DigestResync, Offset: uint64(off), Length: uint32(len(data)), Sums: e.sums(data)}})
	default:
		delete(p.rs.dataRanges, off)
		o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.ResyncData{Offset: uint64(off), CRC: wire.Checksum(data), Lagging: e.lagging(p, off, int64(len(data))), Data: data}})
	}
	return o
}

func (e *Engine) onResyncAck(o *Output, p *peer, a *wire.ResyncAck) error {
	if p.repl != SyncSource {
		return fmt.Errorf("%w: resync-ack while %v", ErrProtocol, p.repl)
	}
	if int64(a.Length) > p.rs.inflight || a.Offset+uint64(a.Length) > uint64(e.store.Size()) {
		return fmt.Errorf("%w: resync-ack for [%d, +%d) not in flight", ErrProtocol, a.Offset, a.Length)
	}
	p.rs.inflight -= int64(a.Length)
	if a.Err != "" {
		o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "peer failed to write resync data: " + a.Err})
		return nil
	}
	e.store.ClearInSync(p.slot, int64(a.Offset), int64(a.Length))
	return e.checkSyncEnd(o, p)
}

// checkSyncEnd finishes the resync when a pass is done and nothing is in
// flight, or starts another pass if bits remain.
func (e *Engine) checkSyncEnd(o *Output, p *peer) error {
	if p.rs.cursor < e.store.Size() || p.rs.inflight > 0 || len(p.rs.needData) > 0 {
		return nil
	}
	if e.store.OutOfSyncBytes(p.slot) == 0 {
		return e.finishSync(o, p)
	}
	p.rs.cursor = 0
	p.rs.passes++
	o.Resyncs = append(o.Resyncs, p.id)
	return nil
}

// ResyncIdle lets the sender report that NextResync found nothing on this
// pass; the resync (or verify) ends if nothing is in flight.
func (e *Engine) ResyncIdle(peerID uint32) Output {
	var o Output
	p, ok := e.peers[peerID]
	if !ok {
		return o
	}
	var err error
	switch p.repl {
	case SyncSource:
		err = e.checkSyncEnd(&o, p)
	case VerifyS:
		err = e.checkVerifyEnd(&o, p)
	}
	if err != nil {
		e.diskFailed(&o, err)
	}
	return o
}

func (e *Engine) finishSync(o *Output, p *peer) error {
	o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.SyncDone{Current: e.gen.Current, History: e.gen.History}})
	old := p.repl
	p.repl = Established
	e.peerEvent(o, p, "replication", old.String(), p.repl.String(), "resync finished")
	e.gen.CrashedPrimary = false
	return e.inSync(o, p)
}

func (e *Engine) onResyncData(o *Output, p *peer, d *wire.ResyncData) error {
	if p.repl != SyncTarget {
		return fmt.Errorf("%w: resync data while %v", ErrProtocol, p.repl)
	}
	if d.Offset+uint64(len(d.Data)) > uint64(e.store.Size()) || len(d.Data) == 0 {
		return fmt.Errorf("%w: resync data [%d, +%d) outside the volume", ErrProtocol, d.Offset, len(d.Data))
	}
	if e.multi() {
		e.markForOthers(p, int64(d.Offset), int64(len(d.Data)), d.Lagging)
		if d.Lagging != 0 {
			// Once this node is in sync, the primary's next State
			// clears those marks (followPrimary) while the lagging peers
			// may still not have written it. Keep the block like a write
			// the primary has not confirmed: the next write it sends here
			// is newer than the lagging ones, so its confirmation covers
			// them, and losing the primary first marks the block again
			// (primaryLost).
			e.noteUnconfirmed(p, p.rxSeq+1, int64(d.Offset), int64(len(d.Data)))
		}
	}
	o.Applies = append(o.Applies, Apply{Peer: p.id, Link: p.link, Kind: ApplyResync, Offset: int64(d.Offset), Data: d.Data})
	return nil
}

// lagging is the set of peers in sync with this primary, other than the
// sync target p, that have not yet written a write inside [off, off+n)
// (wire.ResyncData.Lagging): the resync data may hold it, and should this
// node fail before they write it, the target and they would differ there
// with no mark on either side (the five-node simulation found that).
func (e *Engine) lagging(p *peer, off, n int64) uint32 {
	if !e.multi() {
		return 0
	}
	in := e.inSyncMask()
	var m uint32
	for _, q := range e.order {
		if q == p || in&bit(q.id) == 0 {
			continue
		}
		if slices.ContainsFunc(q.tl, func(t tlEntry) bool { return t.off < off+n && off < t.off+t.n }) {
			m |= bit(q.id)
		}
	}
	return m
}

func (e *Engine) onSyncDone(o *Output, p *peer, d *wire.SyncDone) error {
	if p.repl != SyncTarget {
		return fmt.Errorf("%w: sync-done while %v", ErrProtocol, p.repl)
	}
	p.doneRecv, p.doneLater = true, nil
	o.Applies = append(o.Applies, Apply{Peer: p.id, Link: p.link, Kind: ApplySyncDone, UUID: d.Current, History: d.History})
	return nil
}

// adoptGeneration ends a resync on the target, after its data is durable.
// The target takes the source's generation and history (it now holds the
// source's data); peers outside the source's in-sync set miss what changed
// since this node's old generation, which the resync data marked for them.
func (e *Engine) adoptGeneration(o *Output, p *peer, current uint64, history []uint64) {
	if n := len(p.doneLater); n > 0 {
		// The source took new generations after it sent SyncDone
		// (recorded from its States meanwhile): this node has its writes
		// in them too, and its record may be what let the source
		// complete them (commitIfRecorded). Going back to the older
		// one would lose that record; the ones in between go to the
		// history, newest first.
		later := slices.Clone(p.doneLater)
		slices.Reverse(later)
		current, history = later[0], slices.Concat(later[1:], []uint64{current}, history)
	}
	oldDisk := e.Disk()
	if old := e.gen.Current; current != old {
		for _, q := range e.order {
			if q != p && !(p.inSyncKnown && p.inSync&bit(q.id) != 0) && e.gen.Slots[q.slot].Bitmap == 0 {
				e.gen.Slots[q.slot].Bitmap = old
			}
		}
		var merged []uint64
		for _, h := range slices.Concat(history, []uint64{old}, e.gen.History) {
			if len(merged) < maxHistory && h != 0 && h != uuid.JustCreated && h != current && !slices.Contains(merged, h) {
				merged = append(merged, h)
			}
		}
		e.gen.History = merged
	}
	// A primary source that has not committed its generation yet (its
	// latest State said so) has acknowledged no write in it: the copy is
	// tentative and void like an in-sync peer's (followPrimary).
	uncommitted := p.role == Primary && p.uncommitted && p.current == current
	e.gen.Current, e.gen.Tentative, e.gen.Uncommitted, e.gen.Pending = current, uncommitted, uncommitted, false
	e.gen.Consistent, e.gen.UpToDate, e.gen.CrashedPrimary, e.gen.CrashedSecondary, e.gen.SyncToward, e.gen.LostQuorum = true, true, false, false, 0, false
	if p.role == Primary {
		// Resynced from a primary: a step-down's discard is done.
		for _, q := range e.order {
			q.discardMyData = false
		}
	}
	s := &e.gen.Slots[p.slot]
	s.Bitmap, s.PrimaryBeforeSplit = 0, false
	if err := e.persist(); err != nil {
		e.diskFailed(o, err)
		return
	}
	old := p.repl
	p.repl = Established
	e.peerEvent(o, p, "replication", old.String(), p.repl.String(), "resync finished")
	e.event(o, "disk", oldDisk.String(), e.Disk().String(), "resync finished")
	e.announce(o)
	if p.role == Primary && p.inSyncKnown {
		e.followPrimary(o, p, p.inSync, e.gen.Current, false, uncommitted)
	}
}

// ResyncInflight reports the bytes the sync source has sent and not yet
// had acknowledged, and whether peer is still a sync target of this node.
func (e *Engine) ResyncInflight(peerID uint32) (int64, bool) {
	p, ok := e.peers[peerID]
	switch {
	case !ok:
		return 0, false
	case p.repl == SyncSource:
		return p.rs.inflight, true
	case p.repl == VerifyS:
		return p.verify.inflight, true
	}
	return 0, false
}
