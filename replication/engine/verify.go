package engine

import (
	"crypto/sha256"
	"fmt"

	"github.com/replicad/replicad/replication/wire"
)

// verify is a running online verify on the VerifyS side.
type verify struct {
	cursor      int64
	inflight    int64
	checked     int64
	differences int64
}

// VerifyResult is the outcome of the last finished verify with a peer.
type VerifyResult struct {
	Checked     int64 // bytes compared
	Differences int64 // blocks that differed (marked out of sync)
}

// StartVerify begins an online verify with an Established peer: every
// block's digest is compared with the peer's; differing blocks are marked
// out of sync on both sides, and when the verify ends with differences the
// link is reconnected so the handshake resyncs them. Digest requests travel
// in order with replicated writes, so a busy volume gives no false
// positives.
func (e *Engine) StartVerify(peerID uint32) (Output, error) {
	var o Output
	p, err := e.peer(peerID)
	if err != nil {
		return o, err
	}
	if p.conn != Connected || p.repl != Established {
		return o, fmt.Errorf("node %d is %v/%v; verify needs an Established peer", peerID, p.conn, p.repl)
	}
	old := p.repl
	p.repl = VerifyS
	p.verify = verify{}
	e.peerEvent(&o, p, "replication", old.String(), p.repl.String(), "online verify")
	o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.VerifyStart{}})
	o.Resyncs = append(o.Resyncs, p.id)
	return o, nil
}

// sums returns the per-block digests of data, which starts at a block
// boundary.
func (e *Engine) sums(data []byte) []byte {
	g := int(e.store.Granularity())
	out := make([]byte, 0, (len(data)+g-1)/g*wire.SumSize)
	for i := 0; i < len(data); i += g {
		s := sha256.Sum256(data[i:min(i+g, len(data))])
		out = append(out, s[:wire.SumSize]...)
	}
	return out
}

func (e *Engine) onVerifyStart(o *Output, p *peer) error {
	if p.repl != Established {
		return fmt.Errorf("%w: verify start while %v", ErrProtocol, p.repl)
	}
	old := p.repl
	p.repl = VerifyT
	e.peerEvent(o, p, "replication", old.String(), p.repl.String(), "online verify")
	return nil
}

func (e *Engine) onDigest(o *Output, p *peer, d *wire.Digest) error {
	switch {
	case d.Kind == wire.DigestVerify && p.repl != VerifyT, d.Kind == wire.DigestResync && p.repl != SyncTarget:
		return fmt.Errorf("%w: digest kind %d while %v", ErrProtocol, d.Kind, p.repl)
	case d.Length == 0 || d.Offset+uint64(d.Length) > uint64(e.store.Size()) || d.Offset%uint64(e.store.Granularity()) != 0:
		return fmt.Errorf("%w: digest for [%d, +%d)", ErrProtocol, d.Offset, d.Length)
	}
	blocks := (int64(d.Length) + e.store.Granularity() - 1) / e.store.Granularity()
	if int64(len(d.Sums)) != blocks*wire.SumSize {
		return fmt.Errorf("%w: %d digest bytes for %d blocks", ErrProtocol, len(d.Sums), blocks)
	}
	o.Applies = append(o.Applies, Apply{Peer: p.id, Link: p.link, Kind: ApplyDigest, Offset: int64(d.Offset),
		Length: int64(d.Length), Sums: d.Sums, DigestKind: d.Kind})
	return nil
}

// appliedDigest compares the local data read for a Digest with the peer's
// digests and answers.
func (e *Engine) appliedDigest(o *Output, p *peer, a Apply) {
	g := e.store.Granularity()
	mine := e.sums(a.Data)
	blocks := len(mine) / wire.SumSize
	unequal := make([]uint64, (blocks+63)/64)
	for i := 0; i < blocks; i++ {
		off := a.Offset + int64(i)*g
		n := min(g, a.Offset+a.Length-off)
		if string(mine[i*wire.SumSize:(i+1)*wire.SumSize]) != string(a.Sums[i*wire.SumSize:(i+1)*wire.SumSize]) {
			unequal[i/64] |= 1 << (i % 64)
			if a.DigestKind == wire.DigestVerify {
				e.store.MarkOutOfSync(p.slot, off, n)
			}
		} else if a.DigestKind == wire.DigestResync {
			e.store.ClearInSync(p.slot, off, n)
		}
	}
	o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.DigestReply{Kind: a.DigestKind, Offset: uint64(a.Offset), Length: uint32(a.Length), Unequal: unequal}})
}

func (e *Engine) onDigestReply(o *Output, p *peer, r *wire.DigestReply) error {
	g := e.store.Granularity()
	blocks := int((int64(r.Length) + g - 1) / g)
	if len(r.Unequal) != (blocks+63)/64 {
		return fmt.Errorf("%w: digest reply with %d words for %d blocks", ErrProtocol, len(r.Unequal), blocks)
	}
	switch {
	case r.Kind == wire.DigestVerify && p.repl == VerifyS:
		p.verify.inflight -= int64(r.Length)
		p.verify.checked += int64(r.Length)
		for i := 0; i < blocks; i++ {
			if r.Unequal[i/64]&(1<<(i%64)) != 0 {
				off := int64(r.Offset) + int64(i)*g
				e.store.MarkOutOfSync(p.slot, off, min(g, int64(r.Offset)+int64(r.Length)-off))
				p.verify.differences++
			}
		}
		return e.checkVerifyEnd(o, p)
	case r.Kind == wire.DigestResync && p.repl == SyncSource:
		p.rs.inflight -= int64(r.Length)
		// A block equal on both sides still goes as data when an in-sync
		// peer has not written a write inside it yet: only resync data
		// tells the target to keep it for that peer (ResyncData.Lagging).
		// One look at the whole range first: the transfer logs are
		// scanned per block only when some write falls inside it.
		lags := e.lagging(p, int64(r.Offset), int64(r.Length)) != 0
		for i := 0; i < blocks; i++ {
			off := int64(r.Offset) + int64(i)*g
			n := min(g, int64(r.Offset)+int64(r.Length)-off)
			if r.Unequal[i/64]&(1<<(i%64)) != 0 || lags && e.lagging(p, off, n) != 0 {
				p.rs.needData = append(p.rs.needData, span{off, n})
			} else {
				e.store.ClearInSync(p.slot, off, n)
				p.rs.sameBytes += n
			}
		}
		o.Resyncs = append(o.Resyncs, p.id)
		return e.checkSyncEnd(o, p)
	}
	return fmt.Errorf("%w: digest reply kind %d while %v", ErrProtocol, r.Kind, p.repl)
}

func (e *Engine) checkVerifyEnd(o *Output, p *peer) error {
	if p.verify.cursor < e.store.Size() || p.verify.inflight > 0 {
		return nil
	}
	p.lastVerify = VerifyResult{Checked: p.verify.checked, Differences: p.verify.differences}
	o.Sends = append(o.Sends, Send{Peer: p.id, Msg: &wire.VerifyDone{Checked: uint64(p.verify.checked), Differences: uint64(p.verify.differences)}})
	e.endVerify(o, p)
	return nil
}

func (e *Engine) endVerify(o *Output, p *peer) {
	old := p.repl
	p.repl = Established
	reason := fmt.Sprintf("online verify done: %d bytes compared, %d blocks differ", p.lastVerify.Checked, p.lastVerify.Differences)
	e.peerEvent(o, p, "replication", old.String(), p.repl.String(), reason)
	if p.lastVerify.Differences > 0 {
		// The differing blocks are marked on both sides; meeting again
		// resyncs them (equal generations with marked blocks: from the
		// primary, else the lower node id).
		o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: reason + "; reconnecting to resync them"})
	}
}

func (e *Engine) onVerifyDone(o *Output, p *peer, d *wire.VerifyDone) error {
	if p.repl != VerifyT {
		return fmt.Errorf("%w: verify done while %v", ErrProtocol, p.repl)
	}
	p.lastVerify = VerifyResult{Checked: int64(d.Checked), Differences: int64(d.Differences)}
	e.endVerify(o, p)
	return nil
}
