package engine

// Two primaries (allow-two-primaries) may write the same blocks at once:
// node X writes x while node Y writes y, each before applying the other's.
// Each node applies the peer's write after its own, so without care X ends
// with y and Y with x. One node of each pair, the resolver (the lower id),
// decides: its own write wins the overlap on both nodes.
//
// Order on a node is what its range lock made it: a peer's write applies
// after a local write of the same blocks that started before, and a local
// write that starts after the apply began lands after it. The appliedSeq
// stamp (wire.Write.Applied) says where each write fell: the peer's writes
// up to it began applying before this write started; the ones above it
// apply after it, so they win the overlap on the node that sent it.
//
// The resolver therefore skips, when applying a peer write w, the overlap
// with each of its own writes that the peer applies after w:
//   - writes it sent with a sequence above w's stamp, found in the
//     transfer log when w is received (a write leaves the log on the
//     peer's WriteAck, which the peer sends after applying it, so after
//     sending w: the log still holds it);
//   - writes it starts after receiving w and before applying it (they
//     reach the peer after w was issued there).
// The non-resolver applies everything: on its disk the resolver's write
// already comes last exactly where the resolver skips.

// incoming is a peer's received write whose apply has not begun.
type incoming struct {
	seq    uint64
	off, n int64
	skip   []Span
}

// resolves: this node resolves conflicts with p.
func (e *Engine) resolves(p *peer) bool {
	return e.cfg.AllowTwoPrimaries && e.cfg.NodeID < p.id
}

// noteIncoming records a received peer write and its overlap with this
// node's writes the peer had not applied when it issued it.
func (e *Engine) noteIncoming(p *peer, seq uint64, off, n int64, stamp uint64) {
	if !e.resolves(p) {
		return
	}
	in := incoming{seq: seq, off: off, n: n}
	for _, t := range p.tl {
		if t.seq > stamp {
			in.skip = appendOverlap(in.skip, off, n, t.off, t.n)
		}
	}
	p.incoming = append(p.incoming, in)
}

// overtakeIncoming: a local write of [off, off+n) starts while peer
// writes are received but not applied; it wins their overlap.
func (e *Engine) overtakeIncoming(off, n int64) {
	for _, p := range e.order {
		for i := range p.incoming {
			in := &p.incoming[i]
			in.skip = appendOverlap(in.skip, in.off, in.n, off, n)
		}
	}
}

func appendOverlap(out []Span, off, n, o, m int64) []Span {
	s, end := max(off, o), min(off+n, o+m)
	if s >= end {
		return out
	}
	return append(out, Span{s, end - s})
}

// BeginApply is called when the apply of a peer's write or zeroing
// begins: under the range lock of its blocks, before it writes. It returns
// the parts not to write (this node's concurrent writes win there); from
// now on local writes of those blocks land after this one.
func (e *Engine) BeginApply(a Apply) []Span {
	p, ok := e.peers[a.Peer]
	if !ok || p.link != a.Link || (a.Kind != ApplyWrite && a.Kind != ApplyZero) {
		return nil
	}
	p.appliedSeq = max(p.appliedSeq, a.Seq)
	var skip []Span
	for len(p.incoming) > 0 && p.incoming[0].seq <= a.Seq {
		if p.incoming[0].seq == a.Seq {
			skip = p.incoming[0].skip
		}
		p.incoming = p.incoming[1:]
	}
	return skip
}

// endApply: a peer's write was applied (BeginApply may not have run when
// the apply failed before writing).
func (e *Engine) endApply(p *peer, seq uint64) {
	p.appliedSeq = max(p.appliedSeq, seq)
	for len(p.incoming) > 0 && p.incoming[0].seq <= seq {
		p.incoming = p.incoming[1:]
	}
}
