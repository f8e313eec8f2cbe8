package engine_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/replicad/replicad/dlm/dlmsim"
	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/dlm/wire"
)

// FuzzPeerLies injects envelopes decoded from the fuzzer's bytes into a
// three-node cluster with locks held, granted and waiting, ahead of the
// traffic in flight, as sent by a node's authenticated process: a peer
// that lies. Each record is a control byte, a uvarint length and the
// envelope's encoding; with the control byte's low bit set, the
// envelope's lockspace, sender, receiver and incarnations are set to real
// ones (node 1 + (control>>1)%3 to the next node), so that it gets past
// the session checks. The kernel DLM trusts its peers and so does this
// one, so a lie may well confuse the locks; what it must not do is make
// an engine panic or stop the simulation from running on.
func FuzzPeerLies(f *testing.F) {
	var all []byte
	for _, env := range liesStart(f).Envelopes() {
		rec := lieRecord(0, env)
		f.Add(rec)
		all = append(all, rec...)
	}
	f.Add(all)
	f.Fuzz(func(t *testing.T, in []byte) {
		c := liesStart(t)
		r := bytes.NewReader(in)
		for n := 0; n < 8; n++ {
			ctl, err := r.ReadByte()
			if err != nil {
				break
			}
			size, err := binary.ReadUvarint(r)
			if err != nil || size > uint64(r.Len()) {
				break
			}
			body := make([]byte, size)
			io.ReadFull(r, body)
			env, err := wire.Unmarshal(body)
			if err != nil {
				continue
			}
			to := dlmsim.NodeID(env.To)
			if ctl&1 != 0 {
				from := dlmsim.NodeID(1 + int(ctl>>1)%3)
				to = from%3 + 1
				env.Lockspace, env.From, env.To = "sim", from, to
				if e := c.Node(from).E; e != nil {
					env.FromInc = e.Incarnation()
				}
				if e := c.Node(to).E; e != nil {
					env.ToInc = e.Incarnation()
				}
			}
			c.Inject(to, env)
			c.DeliverAll()
		}
		for range 300 {
			c.Step(false)
		}
	})
}

// liesStart is the fuzz target's starting point: node 1 masters "res" and
// holds it EX with a value block, node 2's PR request on it and node 3's
// CW on "other" are in flight.
func liesStart(t testing.TB) *dlmsim.Cluster {
	c := cluster(t, 3)
	lock(t, c, 1, "res", locktable.EX, locktable.ValBlk, bytes.Repeat([]byte{7}, 32))
	settle(t, c)
	lock(t, c, 2, "res", locktable.PR, 0, nil)
	lock(t, c, 3, "other", locktable.CW, 0, nil)
	return c
}

// lieRecord encodes env as one record of FuzzPeerLies's input.
func lieRecord(ctl byte, env *wire.Envelope) []byte {
	body := wire.Marshal(env)
	return append(binary.AppendUvarint([]byte{ctl}, uint64(len(body))), body...)
}
