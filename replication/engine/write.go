package engine

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/replicad/replicad/replication/wire"
)

// write is a client write in flight.
type write struct {
	id        uint64
	off, n    int64
	localDone bool
	localErr  error
	// waiting holds one bit per peer whose acknowledgement (per the
	// protocol) the write still needs.
	waiting uint32
	done    bool
	// inDoubt is set when quorum was lost while the write waited for a
	// peer: it completes with this error (inDoubtError).
	inDoubt error
	// heldForGen: a peer that left missed it, or it was started while
	// the generation was tentative; it completes once the new generation
	// is taken, by the peers in sync or, with none, recorded by a sync
	// target (newGenerationUnconfirmed).
	heldForGen bool
	// unwritten holds one bit per peer that has not yet written it.
	unwritten uint32
	retired   bool
}

// flush is a client flush in flight.
type flush struct {
	id        uint64
	epoch     uint64
	localDone bool
	localErr  error
	waiting   uint32 // protocol-C peers that have not flushed
	done      bool
	inDoubt   error
}

// StartWrite begins a client write of data at off. It queues the write to
// every peer that replicates and marks it out of sync for every peer that
// does not. The caller then writes locally and reports LocalWriteDone; the
// write is complete when a Completion with its id appears. data must stay
// untouched until then.
func (e *Engine) StartWrite(off int64, data []byte, fua bool) (uint64, Output, error) {
	crc := wire.Checksum(data)
	return e.startModify(off, int64(len(data)), func(p *peer) wire.Message {
		return &wire.Write{Seq: p.seq, Offset: uint64(off), FUA: fua, CRC: crc, Applied: p.appliedSeq, Data: data}
	})
}

// StartZero begins a client WRITE_ZEROES or TRIM of [off, off+n), like
// StartWrite but sent as a range instead of data.
func (e *Engine) StartZero(off, n int64, deallocate, fua bool) (uint64, Output, error) {
	return e.startModify(off, n, func(p *peer) wire.Message {
		return &wire.Zero{Seq: p.seq, Offset: uint64(off), Length: uint64(n), Deallocate: deallocate, FUA: fua, Applied: p.appliedSeq}
	})
}

// startModify is StartWrite and StartZero: msg builds the message for a
// peer once its sequence number is assigned.
func (e *Engine) startModify(off, n int64, msg func(*peer) wire.Message) (uint64, Output, error) {
	var o Output
	if e.role != Primary {
		return 0, o, ErrNotPrimary
	}
	if err := e.ioAllowed(); err != nil {
		return 0, o, err
	}
	if err := e.rotateForAbsent(&o); err != nil {
		return 0, o, err
	}
	e.overtakeIncoming(off, n)
	e.nextID++
	// A write in a generation not yet committed (announced, or taken
	// and not yet recorded by enough nodes under quorum) completes once
	// it is (commitIfRecorded): a peer may acknowledge it without
	// recording the generation (one that just finished its resync at
	// the generation before and is not in the in-sync set yet ignores
	// the announcement), and peers that did record it may be fewer than
	// commitSize.
	w := &write{id: e.nextID, off: off, n: n, heldForGen: e.uncommittedPrimary()}
	for _, id := range e.cfg.Peers {
		if e.peers[id].replicating() {
			w.waiting |= bit(id)
		}
	}
	w.unwritten = w.waiting
	gid := e.trackWrite(w.waiting)
	for _, id := range e.cfg.Peers {
		p := e.peers[id]
		if !p.replicating() {
			e.store.MarkOutOfSync(p.slot, off, n)
			continue
		}
		p.seq++
		p.tl = append(p.tl, tlEntry{seq: p.seq, gid: gid, off: off, n: n, w: w, owner: w})
		if gid != 0 {
			p.sentGids = append(p.sentGids, seqGid{p.seq, gid})
		}
		o.Sends = append(o.Sends, Send{Peer: id, Msg: msg(p)})
	}
	e.writes[w.id] = w
	return w.id, o, nil
}

// LocalWriteDone reports the local write's result.
func (e *Engine) LocalWriteDone(id uint64, err error) Output {
	var o Output
	w, ok := e.writes[id]
	if !ok {
		return o
	}
	w.localDone, w.localErr = true, err
	e.maybeCompleteWrite(&o, w)
	e.maybeRetire(&o, w)
	return o
}

// written records that peer wrote (or will resync) the write of a
// transfer-log entry.
func (e *Engine) written(o *Output, t tlEntry, peerID uint32) {
	e.peerWrote(t.gid, peerID)
	t.owner.unwritten &^= bit(peerID)
	e.maybeRetire(o, t.owner)
}

func (e *Engine) maybeRetire(o *Output, w *write) {
	if w.retired || !w.localDone || w.unwritten != 0 {
		return
	}
	w.retired = true
	o.Retired = append(o.Retired, w.id)
}

// satisfy records that peer no longer holds up write w.
func (e *Engine) satisfy(o *Output, w *write, peerID uint32) {
	if w.waiting&bit(peerID) == 0 {
		return
	}
	w.waiting &^= bit(peerID)
	e.maybeCompleteWrite(o, w)
}

func (e *Engine) maybeCompleteWrite(o *Output, w *write) {
	if w.done || !w.localDone || w.waiting != 0 || w.heldForGen && e.newGenerationUnconfirmed() {
		return
	}
	w.done = true
	delete(e.writes, w.id)
	o.Completions = append(o.Completions, Completion{ID: w.id, Err: cmp.Or(w.localErr, w.inDoubt)})
}

// Sent reports that every Write up to seq was written to the peer's socket
// (what protocol A waits for).
func (e *Engine) Sent(peerID uint32, seq uint64) Output {
	var o Output
	p, ok := e.peers[peerID]
	if !ok || seq <= p.sent {
		return o
	}
	p.sent = seq
	if p.proto == 'A' {
		e.ackUpTo(&o, p, seq)
	}
	return o
}

// ackUpTo satisfies the waiting writes in the transfer log up to seq
// (entries stay in the log until the peer has written them).
func (e *Engine) ackUpTo(o *Output, p *peer, seq uint64) {
	for i := range p.tl {
		t := &p.tl[i]
		if t.seq > seq {
			break
		}
		if t.w != nil {
			w := t.w
			t.w = nil
			e.satisfy(o, w, p.id)
		}
	}
}

func (e *Engine) onRecvAck(o *Output, p *peer, a *wire.RecvAck) error {
	if a.Seq > p.seq {
		return fmt.Errorf("%w: recv-ack %d beyond last write %d", ErrProtocol, a.Seq, p.seq)
	}
	if a.Seq > p.recvAck {
		p.recvAck = a.Seq
		if p.proto == 'B' {
			e.ackUpTo(o, p, a.Seq)
		}
	}
	return nil
}

func (e *Engine) onWriteAck(o *Output, p *peer, a *wire.WriteAck) error {
	if a.Seq > p.seq {
		return fmt.Errorf("%w: write-ack %d beyond last write %d", ErrProtocol, a.Seq, p.seq)
	}
	if a.Err != "" {
		// The peer could not write: its copy of these blocks is stale.
		for _, t := range p.tl {
			if t.seq <= a.Seq {
				e.store.MarkOutOfSync(p.slot, t.off, t.n)
			}
		}
		o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "peer's disk failed a write: " + a.Err})
	}
	if a.Seq <= p.writeAck {
		return nil
	}
	p.writeAck = a.Seq
	e.ackUpTo(o, p, a.Seq)
	i := 0
	for i < len(p.tl) && p.tl[i].seq <= a.Seq {
		e.written(o, p.tl[i], p.id)
		i++
	}
	p.tl = p.tl[i:]
	e.confirm(o)
	return nil
}

// StartFlush begins a client flush: every write completed before it must
// become durable locally and on every protocol-C peer. The caller flushes
// locally and reports LocalFlushDone.
func (e *Engine) StartFlush() (uint64, Output, error) {
	var o Output
	if err := e.ioAllowed(); err != nil {
		return 0, o, err
	}
	e.nextID++
	e.epoch++
	f := &flush{id: e.nextID, epoch: e.epoch}
	for _, id := range e.cfg.Peers {
		p := e.peers[id]
		if !p.replicating() {
			continue
		}
		o.Sends = append(o.Sends, Send{Peer: id, Msg: &wire.Flush{Epoch: f.epoch}})
		if p.proto == 'C' {
			f.waiting |= bit(id)
		}
	}
	e.flushes[f.id] = f
	return f.id, o, nil
}

// LocalFlushDone reports the local flush's result.
func (e *Engine) LocalFlushDone(id uint64, err error) Output {
	var o Output
	f, ok := e.flushes[id]
	if !ok {
		return o
	}
	f.localDone, f.localErr = true, err
	e.maybeCompleteFlush(&o, f)
	return o
}

func (e *Engine) maybeCompleteFlush(o *Output, f *flush) {
	if f.done || !f.localDone || f.waiting != 0 {
		return
	}
	f.done = true
	delete(e.flushes, f.id)
	o.Completions = append(o.Completions, Completion{ID: f.id, Err: cmp.Or(f.localErr, f.inDoubt)})
}

// flushesInOrder returns the flushes in flight, oldest first (several may
// complete at once: in the same order every time).
func (e *Engine) flushesInOrder() []*flush {
	fs := slices.Collect(maps.Values(e.flushes))
	slices.SortFunc(fs, func(a, b *flush) int { return cmp.Compare(a.id, b.id) })
	return fs
}

func (e *Engine) onFlushAck(o *Output, p *peer, a *wire.FlushAck) error {
	for _, f := range e.flushesInOrder() {
		if f.epoch == a.Epoch && f.waiting&bit(p.id) != 0 {
			if a.Err != "" {
				o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "peer's disk failed a flush: " + a.Err})
			}
			f.waiting &^= bit(p.id)
			e.maybeCompleteFlush(o, f)
		}
	}
	return nil
}

// diskFailed records a local metadata failure.
func (e *Engine) diskFailed(o *Output, err error) {
	if e.failed != nil {
		return
	}
	old := e.Disk()
	e.failed = err
	e.event(o, "disk", old.String(), e.Disk().String(), err.Error())
}
