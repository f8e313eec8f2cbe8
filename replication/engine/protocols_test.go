package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/wire"
)

// syncedPair is two connected engines under proto, node 0 primary, node 1
// resynced from it (Established, UpToDate).
func syncedPair(t *testing.T, proto byte) *pair {
	t.Helper()
	pr := newPairWith(t, proto, nil)
	pr.exec(0, must(pr.eng[0].Promote(true)))
	pr.connect()
	pr.resync(0)
	for i, e := range pr.eng {
		if p := e.Status().Peers[0]; p.Repl != engine.Established || e.Disk() != engine.UpToDate {
			t.Fatalf("setup: node %d: %v, disk %v; want Established, UpToDate", i, p.Repl, e.Disk())
		}
	}
	return pr
}

// completes reports whether o completes id, and with which error.
func completes(o engine.Output, id uint64) (bool, error) {
	for _, c := range o.Completions {
		if c.ID == id {
			return true, c.Err
		}
	}
	return false, nil
}

// sendsOf returns the messages of type M that o queues.
func sendsOf[M wire.Message](o engine.Output) []M {
	var out []M
	for _, s := range o.Sends {
		if m, ok := s.Msg.(M); ok {
			out = append(out, m)
		}
	}
	return out
}

// TestWriteCompletionPerProtocol: DRBD's protocols. A write completes once
// it is on the local disk and A: written to the peer's socket (Sent), B:
// the peer received it (RecvAck), C: the peer wrote it (WriteAck); never
// one step earlier. The messages are stepped by hand, one event at a time,
// with the local write done first or last.
func TestWriteCompletionPerProtocol(t *testing.T) {
	cases := []struct {
		proto byte
		// done is the step after which the write completes when the
		// local write is done first.
		done string
	}{
		{'A', "sent"},
		{'B', "recv-ack delivered"},
		{'C', "write-ack delivered"},
	}
	for _, c := range cases {
		for _, localLast := range []bool{false, true} {
			t.Run(fmt.Sprintf("protocol %c, local write last %v", c.proto, localLast), func(t *testing.T) {
				pr := syncedPair(t, c.proto)
				p, s := pr.eng[0], pr.eng[1]
				id, o, err := p.StartWrite(8192, bytes.Repeat([]byte{7}, 4096), false)
				if err != nil {
					t.Fatal(err)
				}
				if done, _ := completes(o, id); done {
					t.Fatal("write complete when started")
				}
				ws := sendsOf[*wire.Write](o)
				if len(ws) != 1 {
					t.Fatalf("StartWrite queued %d writes, want 1", len(ws))
				}
				w := ws[0]
				var toPrimary []wire.Message // what node 1 queued for node 0
				var apply *engine.Apply
				// deliver hands node 1's queued messages to node 0.
				deliver := func() engine.Output {
					var all engine.Output
					for _, m := range toPrimary {
						o := must(p.Receive(1, m))
						all.Completions = append(all.Completions, o.Completions...)
					}
					toPrimary = nil
					return all
				}
				steps := []struct {
					name string
					do   func() engine.Output // returns the primary's output
				}{
					{"local write done", func() engine.Output { return p.LocalWriteDone(id, nil) }},
					{"sent", func() engine.Output { return p.Sent(1, w.Seq) }},
					{"peer received", func() engine.Output {
						o := must(s.Receive(0, w))
						for _, snd := range o.Sends {
							toPrimary = append(toPrimary, snd.Msg)
						}
						if len(o.Applies) != 1 || o.Applies[0].Kind != engine.ApplyWrite {
							t.Fatalf("the peer's applies for the write: %+v", o.Applies)
						}
						apply = &o.Applies[0]
						if got := len(sendsOf[*wire.RecvAck](o)); got != map[bool]int{true: 1}[c.proto == 'B'] {
							t.Fatalf("protocol %c: the peer sent %d RecvAcks on receiving", c.proto, got)
						}
						return engine.Output{}
					}},
					{"recv-ack delivered", deliver},
					{"peer applied", func() engine.Output {
						o := s.Applied(*apply, nil)
						for _, snd := range o.Sends {
							toPrimary = append(toPrimary, snd.Msg)
							// Only protocol C completes writes on the
							// WriteAck: elsewhere the link may hold it.
							if _, ok := snd.Msg.(*wire.WriteAck); ok && snd.Lazy != (c.proto != 'C') {
								t.Fatalf("protocol %c: WriteAck lazy %v", c.proto, snd.Lazy)
							}
						}
						return engine.Output{}
					}},
					{"write-ack delivered", deliver},
				}
				want := c.done
				if localLast {
					steps = append(steps[1:], steps[0])
					want = "local write done"
				}
				completedAt := ""
				for _, st := range steps {
					done, err := completes(st.do(), id)
					if !done {
						continue
					}
					if err != nil {
						t.Fatalf("completed at %q with %v", st.name, err)
					}
					if completedAt != "" {
						t.Fatalf("completed twice: at %q and %q", completedAt, st.name)
					}
					completedAt = st.name
				}
				if completedAt != want {
					t.Fatalf("protocol %c: the write completed at step %q, want %q", c.proto, completedAt, want)
				}
			})
		}
	}
}

// TestFailedWriteAckIsNotLazy: a secondary that failed to write tells the
// primary at once, under every protocol (the primary marks the blocks out
// of sync and disconnects).
func TestFailedWriteAckIsNotLazy(t *testing.T) {
	for _, proto := range []byte{'A', 'B', 'C'} {
		pr := syncedPair(t, proto)
		_, o, err := pr.eng[0].StartWrite(0, bytes.Repeat([]byte{7}, 4096), false)
		if err != nil {
			t.Fatal(err)
		}
		ro := must(pr.eng[1].Receive(0, sendsOf[*wire.Write](o)[0]))
		ao := pr.eng[1].Applied(ro.Applies[0], errors.New("injected write error"))
		found := false
		for _, snd := range ao.Sends {
			if a, ok := snd.Msg.(*wire.WriteAck); ok {
				found = true
				if a.Err == "" || snd.Lazy {
					t.Fatalf("protocol %c: failed write acknowledged with %+v, lazy %v", proto, a, snd.Lazy)
				}
			}
		}
		if !found {
			t.Fatalf("protocol %c: no WriteAck for a failed write", proto)
		}
	}
}

// stepFlush is a flush stepped by hand on a synced pair: it returns the
// flush's id and the Flush the primary queued for node 1.
func stepFlush(t *testing.T, pr *pair) (uint64, *wire.Flush, engine.Output) {
	t.Helper()
	id, o, err := pr.eng[0].StartFlush()
	if err != nil {
		t.Fatal(err)
	}
	fs := sendsOf[*wire.Flush](o)
	if len(fs) != 1 {
		t.Fatalf("StartFlush queued %d flushes for the peer, want 1", len(fs))
	}
	return id, fs[0], o
}

// TestFlushWaitsForProtocolCPeer: "a FLUSH reply comes only after every
// write already replied to is durable on the local disk and, under
// protocol C, on every connected peer" (DESIGN.md, docs/replication.md).
// The peer gets the Flush under every protocol (it keeps its data
// crash-consistent); only under C does the primary wait for its FlushAck,
// which the peer sends once its flush is done, after the writes before it.
func TestFlushWaitsForProtocolCPeer(t *testing.T) {
	for _, proto := range []byte{'A', 'B', 'C'} {
		t.Run(fmt.Sprintf("protocol %c", proto), func(t *testing.T) {
			pr := syncedPair(t, proto)
			p, s := pr.eng[0], pr.eng[1]
			// A write the flush covers, complete per the protocol but
			// not yet written on the peer (its WriteAck not delivered).
			wid, o, err := p.StartWrite(0, bytes.Repeat([]byte{3}, 4096), false)
			if err != nil {
				t.Fatal(err)
			}
			w := sendsOf[*wire.Write](o)[0]
			p.LocalWriteDone(wid, nil)
			p.Sent(1, w.Seq)
			ro := must(s.Receive(0, w))
			for _, m := range sendsOf[*wire.RecvAck](ro) {
				must(p.Receive(1, m))
			}

			id, f, o := stepFlush(t, pr)
			if done, _ := completes(o, id); done {
				t.Fatal("flush complete when started")
			}
			lo := p.LocalFlushDone(id, nil)
			if done, _ := completes(lo, id); done != (proto != 'C') {
				t.Fatalf("protocol %c: flush complete after the local flush alone: %v", proto, done)
			}
			// The peer applies in order: the write, then the flush.
			fo := must(s.Receive(0, f))
			if len(fo.Applies) != 1 || fo.Applies[0].Kind != engine.ApplyFlush || fo.Applies[0].Epoch != f.Epoch {
				t.Fatalf("the peer's applies for the flush: %+v", fo.Applies)
			}
			wack := s.Applied(ro.Applies[0], nil)
			fack := s.Applied(fo.Applies[0], nil)
			acks := sendsOf[*wire.FlushAck](fack)
			if len(acks) != 1 || acks[0].Epoch != f.Epoch || acks[0].Err != "" {
				t.Fatalf("the peer's answer to the flush: %+v", fack.Sends)
			}
			for _, m := range sendsOf[*wire.WriteAck](wack) {
				if done, _ := completes(must(p.Receive(1, m)), id); done {
					t.Fatal("flush complete on the peer's write-ack, before its flush-ack")
				}
			}
			done, err := completes(must(p.Receive(1, acks[0])), id)
			if proto == 'C' && (!done || err != nil) {
				t.Fatalf("protocol C: flush-ack delivered: complete %v (%v), want complete", done, err)
			}
			if proto != 'C' && done {
				t.Fatalf("protocol %c: flush completed a second time on the flush-ack", proto)
			}
		})
	}
}

// TestFlushWaitsForEveryProtocolCPeer: with two protocol-C peers in sync,
// a flush completes on the last of the local flush and both FlushAcks, in
// any order.
func TestFlushWaitsForEveryProtocolCPeer(t *testing.T) {
	orders := [][]string{{"local", "1", "2"}, {"1", "local", "2"}, {"2", "1", "local"}}
	for _, order := range orders {
		t.Run(strings.Join(order, ","), func(t *testing.T) {
			r := rand.New(rand.NewPCG(41, 42))
			e := newEngine(t, 0, []uint32{1, 2}, 'C', r, nil)
			must(e.Promote(true))
			for _, id := range []uint32{1, 2} {
				handshake(t, e, id, func(mine, theirs *wire.Hello) {})
				must(e.Receive(id, &wire.State{Role: uint8(engine.Secondary), Disk: uint8(engine.UpToDate), Current: e.Status().Current}))
			}
			for _, ps := range e.Status().Peers {
				if ps.Repl != engine.Established {
					t.Fatalf("setup: node %d %v", ps.Node, ps.Repl)
				}
			}
			id, o, err := e.StartFlush()
			if err != nil {
				t.Fatal(err)
			}
			epochs := map[uint32]uint64{}
			for _, s := range o.Sends {
				if f, ok := s.Msg.(*wire.Flush); ok {
					epochs[s.Peer] = f.Epoch
				}
			}
			if len(epochs) != 2 {
				t.Fatalf("flush sent to %v, want nodes 1 and 2", epochs)
			}
			for i, step := range order {
				var o engine.Output
				if step == "local" {
					o = e.LocalFlushDone(id, nil)
				} else {
					var peer uint32 = 1
					if step == "2" {
						peer = 2
					}
					o = must(e.Receive(peer, &wire.FlushAck{Epoch: epochs[peer]}))
				}
				if done, _ := completes(o, id); done != (i == len(order)-1) {
					t.Fatalf("after %v: flush complete %v", order[:i+1], done)
				}
			}
		})
	}
}

// TestPeerFlushFailureIsReported: a protocol-C peer whose flush fails
// says so in its FlushAck; its disk is Failed, and the primary disconnects
// it (its copy may lack what the flush was to make durable) instead of
// waiting for it. The flush completes then (writes and flushes waiting for
// a peer that goes complete without it).
func TestPeerFlushFailureIsReported(t *testing.T) {
	pr := syncedPair(t, 'C')
	p, s := pr.eng[0], pr.eng[1]
	id, f, _ := stepFlush(t, pr)
	if done, _ := completes(p.LocalFlushDone(id, nil), id); done {
		t.Fatal("flush complete before the peer's flush-ack")
	}
	fo := must(s.Receive(0, f))
	so := s.Applied(fo.Applies[0], errors.New("injected: flush failed"))
	if s.Disk() != engine.Failed {
		t.Fatalf("the peer's disk after its flush failed: %v, want Failed", s.Disk())
	}
	acks := sendsOf[*wire.FlushAck](so)
	if len(acks) != 1 || !strings.Contains(acks[0].Err, "injected") {
		t.Fatalf("the peer's flush-ack: %+v, want one carrying the error", so.Sends)
	}
	o := must(p.Receive(1, acks[0]))
	if !slices.ContainsFunc(o.Disconnects, func(d engine.Disconnect) bool {
		return d.Peer == 1 && strings.Contains(d.Reason, "failed a flush") && strings.Contains(d.Reason, "injected")
	}) {
		t.Fatalf("the primary on the failed flush-ack: disconnects %+v, want node 1 with the reason", o.Disconnects)
	}
	if done, _ := completes(o, id); !done {
		t.Fatal("flush not complete once the failing peer is dropped")
	}
}

// TestFUAWriteOnThePeer: a FUA write is a FUA write on the peer too, and
// under protocol C completes only on the WriteAck the peer sends once it
// has applied it (with FUA: durably). If the peer fails the write, the
// block is marked out of sync for it and the peer is disconnected.
func TestFUAWriteOnThePeer(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("peer fails %v", fail), func(t *testing.T) {
			pr := syncedPair(t, 'C')
			p, s := pr.eng[0], pr.eng[1]
			id, o, err := p.StartWrite(4096, bytes.Repeat([]byte{9}, 4096), true)
			if err != nil {
				t.Fatal(err)
			}
			w := sendsOf[*wire.Write](o)[0]
			if !w.FUA {
				t.Fatal("the FUA write goes to the peer without FUA")
			}
			for _, o := range []engine.Output{p.LocalWriteDone(id, nil), p.Sent(1, w.Seq)} {
				if done, _ := completes(o, id); done {
					t.Fatal("protocol C FUA write complete before the peer applied it")
				}
			}
			ro := must(s.Receive(0, w))
			if len(ro.Applies) != 1 || !ro.Applies[0].FUA {
				t.Fatalf("the peer applies %+v, want one FUA write", ro.Applies)
			}
			var applyErr error
			if fail {
				applyErr = errors.New("injected: FUA write failed")
			}
			acks := sendsOf[*wire.WriteAck](s.Applied(ro.Applies[0], applyErr))
			if len(acks) != 1 {
				t.Fatalf("the peer sent %d write-acks, want 1", len(acks))
			}
			o = must(p.Receive(1, acks[0]))
			done, err := completes(o, id)
			if !done || err != nil {
				t.Fatalf("on the peer's write-ack: complete %v (%v), want complete", done, err)
			}
			marked := p.Status().Peers[0].OutOfSyncBytes
			dropped := slices.ContainsFunc(o.Disconnects, func(d engine.Disconnect) bool { return d.Peer == 1 })
			if fail != (marked >= 4096) || fail != dropped {
				t.Fatalf("peer failed the write %v: %d bytes marked for it, disconnected %v", fail, marked, dropped)
			}
		})
	}
}
