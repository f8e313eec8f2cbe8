package engine

import (
	"fmt"

	"github.com/replicad/replicad/replication/wire"
)

// Receive handles a message from a connected peer. An error means the
// peer broke the protocol: the caller closes the connection (and reports
// Disconnected).
func (e *Engine) Receive(peerID uint32, m wire.Message) (Output, error) {
	var o Output
	p, err := e.peer(peerID)
	if err != nil {
		return o, err
	}
	if p.conn != Connected {
		return o, fmt.Errorf("%w: %v from a peer that is %v", ErrProtocol, m.Type(), p.conn)
	}
	if _, isHello := m.(*wire.Hello); !isHello && p.hello == nil {
		if g, ok := m.(*wire.Goodbye); ok {
			p.noteErr("peer refused: " + g.Reason)
			return o, nil
		}
		return o, fmt.Errorf("%w: %v before hello", ErrProtocol, m.Type())
	}
	switch m := m.(type) {
	case *wire.Hello:
		err = e.onHello(&o, p, m)
	case *wire.State:
		e.onState(&o, p, m)
	case *wire.Write:
		err = e.onWrite(&o, p, m)
	case *wire.Zero:
		err = e.onZero(&o, p, m)
	case *wire.RecvAck:
		err = e.onRecvAck(&o, p, m)
	case *wire.WriteAck:
		err = e.onWriteAck(&o, p, m)
	case *wire.Flush:
		if !p.decided {
			return o, fmt.Errorf("%w: flush before the handshake ended", ErrProtocol)
		}
		o.Applies = append(o.Applies, Apply{Peer: p.id, Link: p.link, Kind: ApplyFlush, Epoch: m.Epoch})
	case *wire.FlushAck:
		err = e.onFlushAck(&o, p, m)
	case *wire.Bitmap:
		err = e.onBitmap(&o, p, m)
	case *wire.ResyncData:
		err = e.onResyncData(&o, p, m)
	case *wire.ResyncAck:
		err = e.onResyncAck(&o, p, m)
	case *wire.SyncDone:
		err = e.onSyncDone(&o, p, m)
	case *wire.Digest:
		err = e.onDigest(&o, p, m)
	case *wire.DigestReply:
		err = e.onDigestReply(&o, p, m)
	case *wire.VerifyStart:
		err = e.onVerifyStart(&o, p)
	case *wire.VerifyDone:
		err = e.onVerifyDone(&o, p, m)
	case *wire.OutOfSync:
		err = e.onOutOfSync(&o, p, m)
	case *wire.Confirmed:
		err = e.onConfirmed(p, m)
	case *wire.Goodbye:
		p.noteErr("peer refused: " + m.Reason)
	default:
		err = fmt.Errorf("%w: unexpected %v", ErrProtocol, m.Type())
	}
	e.maybeAnnounce(&o)
	return o, err
}

func (e *Engine) onWrite(o *Output, p *peer, w *wire.Write) error {
	switch {
	case !p.decided || p.repl == ReplOff || p.paused():
		return fmt.Errorf("%w: write before the handshake ended or while the resync waits", ErrProtocol)
	case e.role == Primary && !e.cfg.AllowTwoPrimaries:
		return fmt.Errorf("%w: write from a peer while this node is primary", ErrProtocol)
	case w.Seq != p.rxSeq+1:
		return fmt.Errorf("%w: write sequence %d after %d", ErrProtocol, w.Seq, p.rxSeq)
	case len(w.Data) == 0 || w.Offset+uint64(len(w.Data)) > uint64(e.store.Size()) || w.Offset+uint64(len(w.Data)) < w.Offset:
		return fmt.Errorf("%w: write [%d, +%d) outside the volume", ErrProtocol, w.Offset, len(w.Data))
	}
	p.rxSeq = w.Seq
	if p.proto == 'B' {
		o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.RecvAck{Seq: w.Seq}})
	}
	e.received(p, w.Seq, int64(w.Offset), int64(len(w.Data)), w.Applied)
	o.Applies = append(o.Applies, Apply{Peer: p.id, Link: p.link, Kind: ApplyWrite, Seq: w.Seq, Offset: int64(w.Offset), Data: w.Data, FUA: w.FUA})
	return nil
}

// received does the bookkeeping of a peer's write or zeroing.
func (e *Engine) received(p *peer, seq uint64, off, n int64, stamp uint64) {
	e.noteIncoming(p, seq, off, n, stamp)
	if e.multi() {
		e.markForOthers(p, off, n, 0)
		e.noteUnconfirmed(p, seq, off, n)
	}
}

func (e *Engine) onZero(o *Output, p *peer, z *wire.Zero) error {
	switch {
	case !p.decided || p.repl == ReplOff || p.paused():
		return fmt.Errorf("%w: zero before the handshake ended or while the resync waits", ErrProtocol)
	case e.role == Primary && !e.cfg.AllowTwoPrimaries:
		return fmt.Errorf("%w: zero from a peer while this node is primary", ErrProtocol)
	case z.Seq != p.rxSeq+1:
		return fmt.Errorf("%w: zero sequence %d after %d", ErrProtocol, z.Seq, p.rxSeq)
	case z.Length == 0 || z.Offset+z.Length > uint64(e.store.Size()) || z.Offset+z.Length < z.Offset:
		return fmt.Errorf("%w: zero [%d, +%d) outside the volume", ErrProtocol, z.Offset, z.Length)
	}
	p.rxSeq = z.Seq
	if p.proto == 'B' {
		o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.RecvAck{Seq: z.Seq}})
	}
	e.received(p, z.Seq, int64(z.Offset), int64(z.Length), z.Applied)
	o.Applies = append(o.Applies, Apply{Peer: p.id, Link: p.link, Kind: ApplyZero, Seq: z.Seq, Offset: int64(z.Offset),
		Length: int64(z.Length), Deallocate: z.Deallocate, FUA: z.FUA})
	return nil
}

func (e *Engine) onState(o *Output, p *peer, s *wire.State) {
	oldRole, oldDisk := p.role, p.disk
	p.role, p.disk = Role(s.Role), DiskState(s.Disk)
	p.current, p.toward, p.uncommitted, p.pending = s.Current, s.SyncToward, s.Uncommitted, s.Pending
	e.peerEvent(o, p, "peer-role", oldRole.String(), p.role.String(), "")
	e.peerEvent(o, p, "peer-disk", oldDisk.String(), p.disk.String(), "")
	if p.role == Primary && e.role == Primary && !e.cfg.AllowTwoPrimaries {
		e.refuse(o, p, "both nodes are primary and allow-two-primaries is off")
	}
	e.genTaken(p, s.Current)
	if p.decided && !p.confirmed {
		p.confirmed = true
		e.rehandshakeDone(o, p)
		e.quorumChanged(o)
	}
	if !e.gen.Consistent && p.decided && p.decision.IsTarget() && !p.paused() && s.Current != 0 && !s.Pending && s.Current != e.gen.SyncToward {
		// our sync source moved to a new generation: the writes it
		// replicates to us now belong to that one (once it took it: an
		// announced one may be dropped; and a paused resync's peer is no
		// source yet: its generation may be older, or a branch)
		// (and says so: its source's generation may be tentative
		// until a target records it)
		e.gen.SyncToward = s.Current
		if p.doneRecv {
			p.doneLater = append(p.doneLater, s.Current)
		}
		if err := e.persist(); err != nil {
			e.diskFailed(o, err)
		} else {
			e.announce(o)
		}
	}
	e.commitIfRecorded(o)
	e.maybeAnnounce(o)
	switch {
	case p.role == Primary:
		e.followPrimary(o, p, s.InSync, s.Current, s.Pending, s.Uncommitted)
	case oldRole == Primary:
		// A primary demotes only once every peer wrote all its writes.
		p.unconfirmed, p.inSyncKnown = nil, false
	}
}

// Applied reports a local Apply's result on a secondary.
func (e *Engine) Applied(a Apply, err error) Output {
	var o Output
	p, ok := e.peers[a.Peer]
	if !ok || p.link != a.Link || p.conn != Connected {
		return o
	}
	msg := ""
	if err != nil {
		msg = err.Error()
		e.diskFailed(&o, err)
	}
	switch a.Kind {
	case ApplyWrite, ApplyZero:
		e.endApply(p, a.Seq)
		// Under protocols A and B no client write waits for this
		// acknowledgement (DRBD sends none per write there): the primary
		// only retires its writes with it, which can wait a little.
		o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.WriteAck{Seq: a.Seq, Err: msg}, Lazy: err == nil && p.proto != 'C'})
	case ApplyFlush:
		o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.FlushAck{Epoch: a.Epoch, Err: msg}})
	case ApplyResync:
		if err == nil {
			e.store.ClearInSync(p.slot, a.Offset, int64(len(a.Data)))
		}
		o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.ResyncAck{Offset: uint64(a.Offset), Length: uint32(len(a.Data)), Err: msg}})
	case ApplyDigest:
		if err != nil {
			o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "reading local data to compare failed: " + msg})
			return o
		}
		e.appliedDigest(&o, p, a)
	case ApplySyncDone:
		if err != nil {
			o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "flushing resynced data failed: " + msg})
			return o
		}
		e.adoptGeneration(&o, p, a.UUID, a.History)
	}
	return o
}
