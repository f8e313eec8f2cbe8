package replication

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/clock"
	"github.com/replicad/replicad/replication/wire"
)

// TestLazyAckQueueing: a held acknowledgement is replaced by a later one,
// queued ahead of the next message, queued once maxHeldAcks are held, and
// queued by the timer ackDelay after it was first held; a session that
// ends drops it.
func TestLazyAckQueueing(t *testing.T) {
	fake := clock.NewFake(time.Unix(0, 0))
	r := &Replicator{cfg: ReplicatorConfig{Clock: fake}}
	l := &link{r: r}
	s := &session{signal: make(chan struct{}, 1)}
	l.sess = s
	seqs := func() string {
		r.mu.Lock()
		defer r.mu.Unlock()
		out := ""
		for _, m := range s.queue {
			switch m := m.(type) {
			case *wire.WriteAck:
				out += fmt.Sprintf("ack%d ", m.Seq)
			default:
				out += m.Type().String() + " "
			}
		}
		s.queue = nil
		return out
	}
	queue := func(m wire.Message, lazy bool) {
		r.mu.Lock()
		l.queueLocked(m, lazy)
		r.mu.Unlock()
	}

	queue(&wire.WriteAck{Seq: 1}, true)
	queue(&wire.WriteAck{Seq: 2}, true)
	if got := seqs(); got != "" {
		t.Fatalf("lazy acks queued at once: %q", got)
	}
	queue(&wire.FlushAck{Epoch: 1}, false)
	if got, want := seqs(), "ack2 "+wire.TypeFlushAck.String()+" "; got != want {
		t.Fatalf("queue after a message behind two lazy acks: %q, want %q", got, want)
	}

	for i := 1; i <= maxHeldAcks; i++ {
		queue(&wire.WriteAck{Seq: uint64(100 + i)}, true)
	}
	if got, want := seqs(), fmt.Sprintf("ack%d ", 100+maxHeldAcks); got != want {
		t.Fatalf("after %d lazy acks: %q, want %q", maxHeldAcks, got, want)
	}

	// The timer armed by the first held ack (Seq 1) is still pending:
	// let it fire, then hold a new one, which a fresh timer sends.
	fake.Advance(ackDelay)
	queue(&wire.WriteAck{Seq: 500}, true)
	fake.Advance(ackDelay - time.Microsecond)
	if got := seqs(); got != "" {
		t.Fatalf("held ack queued before its delay: %q", got)
	}
	fake.Advance(time.Microsecond)
	waitFor(t, "the timer to queue the held ack", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(s.queue) > 0
	})
	if got := seqs(); got != "ack500 " {
		t.Fatalf("timer queued %q, want ack500", got)
	}

	// A held ack of a dead session is dropped, not queued on the next.
	queue(&wire.WriteAck{Seq: 600}, true)
	r.mu.Lock()
	s.dead = true
	next := &session{signal: make(chan struct{}, 1)}
	l.sess = next
	r.mu.Unlock()
	fake.Advance(ackDelay)
	time.Sleep(10 * time.Millisecond) // let a wrongly queued ack show
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(next.queue) != 0 || next.held != nil {
		t.Fatalf("an old session's held ack reached the next session: %v", next.queue)
	}
}

// TestProtocolALazyAcks: under protocol A the secondary acknowledges
// writes in few messages, not one per write (one per maxHeldAcks here,
// the delay being an hour), and the primary retires every write (releases
// its activity-log extents) once the held acknowledgement goes out, here
// ahead of a FlushAck. Under protocol C every write still gets its own
// acknowledgement: each waits for it.
func TestProtocolALazyAcks(t *testing.T) {
	ackSize := int64(len(wire.AppendFrame(nil, &wire.WriteAck{Seq: 1})))
	const writes = 1000
	acks := map[byte]int64{}
	for _, proto := range []byte{'A', 'C'} {
		nodes := twoNodesWith(t, proto, func(c *ReplicatorConfig) { c.ackDelay = time.Hour })
		a, b := nodes[0], nodes[1]
		promoteInSync(t, a, b)
		before := b.rep.Status().Traffic[0].Sent["other"]
		block := bytes.Repeat([]byte{0x5a}, 4096)
		for i := range writes {
			if err := a.rep.WriteAt(ctx, block, int64(i%4096)*4096, false); err != nil {
				t.Fatal(err)
			}
		}
		// "other" also counts pings and state messages: a handful.
		acks[proto] = (b.rep.Status().Traffic[0].Sent["other"] - before) / ackSize
		if err := a.rep.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the primary to retire every write", func() bool {
			a.rep.mu.Lock()
			defer a.rep.mu.Unlock()
			return len(a.rep.mods) == 0
		})
	}
	t.Logf("acknowledgement frames (or their bytes' worth) for %d writes: A %d, C %d", writes, acks['A'], acks['C'])
	if acks['C'] < writes {
		t.Fatalf("protocol C: %d acknowledgements' worth of bytes for %d writes, each waiting for its own", acks['C'], writes)
	}
	if acks['A'] > writes/maxHeldAcks+6 {
		t.Fatalf("protocol A: %d acknowledgements' worth of bytes for %d writes: not held back", acks['A'], writes)
	}
}

// TestCoalesceInPlace: superseded cumulative acknowledgements go, the rest
// keep their order, a failed WriteAck is never dropped.
func TestCoalesceInPlace(t *testing.T) {
	batch := []wire.Message{
		&wire.WriteAck{Seq: 1}, &wire.RecvAck{Seq: 1}, &wire.Flush{Epoch: 1}, &wire.WriteAck{Seq: 2, Err: "disk"},
		&wire.WriteAck{Seq: 3}, &wire.RecvAck{Seq: 3}, &wire.FlushAck{Epoch: 1}, &wire.WriteAck{Seq: 4},
	}
	var got []string
	for _, m := range coalesce(batch) {
		switch m := m.(type) {
		case *wire.WriteAck:
			got = append(got, fmt.Sprintf("wa%d%s", m.Seq, m.Err))
		case *wire.RecvAck:
			got = append(got, fmt.Sprintf("ra%d", m.Seq))
		default:
			got = append(got, m.Type().String())
		}
	}
	want := []string{wire.TypeFlush.String(), "wa2disk", "ra3", wire.TypeFlushAck.String(), "wa4"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("coalesce: %v, want %v", got, want)
	}
}
