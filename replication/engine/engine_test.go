package engine_test

import (
	"bytes"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/replicad/replicad/replication"
	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/meta"
	"github.com/replicad/replicad/replication/uuid"
	"github.com/replicad/replicad/replication/wire"
)

// pair is two engines whose messages the test delivers by hand.
type pair struct {
	t     *testing.T
	eng   [2]*engine.Engine
	queue [2][]wire.Message // queue[i]: messages to node i
	// retired and completed collect outputs per node.
	retired, completed [2][]uint64
}

func newPair(t *testing.T, proto byte) *pair {
	t.Helper()
	pr := &pair{t: t}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range pr.eng {
		mem := disk.NewMem(8 << 20)
		g := meta.DefaultGeometry()
		g.ALExtents = 67
		if _, err := replication.CreateMetadata(replication.Devices{Data: mem}, replication.CreateOptions{NodeID: uint32(i), Geometry: g}); err != nil {
			t.Fatal(err)
		}
		vol, _, err := replication.Attach("r0", replication.Devices{Data: mem}, replication.AttachOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { vol.Close() })
		pr.eng[i], err = engine.New(engine.Config{NodeID: uint32(i), Volume: "r0", Peers: []uint32{uint32(1 - i)}, Protocol: proto,
			Policies: uuid.DefaultPolicies(), NewUUID: r.Uint64}, vol)
		if err != nil {
			t.Fatal(err)
		}
	}
	return pr
}

// exec performs node i's output: sends are queued, applies are done at
// once (the data is not written: these tests look at the protocol).
func (pr *pair) exec(i int, o engine.Output) {
	for _, s := range o.Sends {
		pr.queue[1-i] = append(pr.queue[1-i], s.Msg)
		if w, ok := s.Msg.(*wire.Write); ok {
			defer func() { pr.exec(i, pr.eng[i].Sent(s.Peer, w.Seq)) }()
		}
	}
	pr.retired[i] = append(pr.retired[i], o.Retired...)
	for _, c := range o.Completions {
		pr.completed[i] = append(pr.completed[i], c.ID)
	}
	for _, a := range o.Applies {
		pr.exec(i, pr.eng[i].Applied(a, nil))
	}
}

// drain delivers queued messages until none are left anywhere.
func (pr *pair) drain() {
	for len(pr.queue[0])+len(pr.queue[1]) > 0 {
		for i := range pr.queue {
			for len(pr.queue[i]) > 0 {
				m := pr.queue[i][0]
				pr.queue[i] = pr.queue[i][1:]
				o, err := pr.eng[i].Receive(uint32(1-i), m)
				if err != nil {
					pr.t.Fatalf("node %d: %v", i, err)
				}
				pr.exec(i, o)
			}
		}
	}
}

func (pr *pair) connect() {
	for i := range pr.eng {
		o, err := pr.eng[i].Connected(uint32(1 - i))
		if err != nil {
			pr.t.Fatal(err)
		}
		pr.exec(i, o)
	}
	pr.drain()
}

// TestRetiredWhenThePeerWrote: under protocol A a write completes once it
// is on the wire, but its activity-log extent may only go when the peer
// has written it (or it is marked for resync): a crash before that must
// find it in the activity log.
func TestRetiredWhenThePeerWrote(t *testing.T) {
	pr := newPair(t, 'A')
	pr.connect()
	o, err := pr.eng[0].Promote(true)
	if err != nil {
		t.Fatal(err)
	}
	pr.exec(0, o)
	pr.drain() // reconnection after the forced promotion is the caller's
	pr.connect()
	id, o, err := pr.eng[0].StartWrite(0, bytes.Repeat([]byte{1}, 4096), false)
	if err != nil {
		t.Fatal(err)
	}
	pr.exec(0, o)
	pr.exec(0, pr.eng[0].LocalWriteDone(id, nil))
	if !slices.Contains(pr.completed[0], id) {
		t.Fatal("protocol A write not complete once sent and written locally")
	}
	if slices.Contains(pr.retired[0], id) {
		t.Fatal("write retired before the peer wrote it")
	}
	pr.drain()
	if !slices.Contains(pr.retired[0], id) {
		t.Fatal("write not retired after the peer's write acknowledgement")
	}

	id, o, err = pr.eng[0].StartWrite(4096, bytes.Repeat([]byte{2}, 4096), false)
	if err != nil {
		t.Fatal(err)
	}
	pr.exec(0, o)
	pr.exec(0, pr.eng[0].LocalWriteDone(id, nil))
	pr.queue[1] = nil
	if slices.Contains(pr.retired[0], id) {
		t.Fatal("write retired before the peer wrote it")
	}
	pr.exec(0, pr.eng[0].Disconnected(1, "test"))
	if !slices.Contains(pr.retired[0], id) {
		t.Fatal("write not retired when the peer left (it is marked for resync)")
	}
}
