package engine_test

import (
	"bytes"
	"testing"

	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/wire"
)

// FuzzPeerLies feeds an in-sync pair messages from a peer that lies: each
// is decoded from the fuzzer's bytes as the link decodes frames, and
// handed to node 0 (the primary) or node 1 as if its peer had sent it,
// between honest writes and deliveries. A refusal makes both sides
// disconnect and reconnect, as the link would. Whatever arrives, no engine
// may panic, refuse without saying why, ask for a local operation outside
// the volume (dataPair.exec checks the bounds), or, as a primary, write
// its peer's data over its own.
func FuzzPeerLies(f *testing.F) {
	for _, proto := range []byte{'A', 'C'} {
		f.Add(proto, honestTraffic(f, proto, true, false))
		f.Add(proto, honestTraffic(f, proto, false, false))
		// The primary's writes sent to the primary, its peer's acks to
		// the secondary.
		f.Add(proto, honestTraffic(f, proto, false, true))
	}
	f.Fuzz(func(t *testing.T, proto byte, in []byte) {
		dp := syncedDataPair(t, "ABC"[proto%3], nil)
		// A primary's data is the client's: no peer may overwrite it.
		dp.onApply = func(i int, a engine.Apply) {
			if dp.eng[i].Role() == engine.Primary && (a.Kind == engine.ApplyWrite || a.Kind == engine.ApplyResync || a.Kind == engine.ApplyZero) {
				t.Fatalf("node %d, a primary, applies its peer's data (kind %d, %d bytes at %d)", i, a.Kind, max(len(a.Data), int(a.Length)), a.Offset)
			}
		}
		r := bytes.NewReader(in)
		for step := 0; step < 16; step++ {
			dir, err := r.ReadByte()
			if err != nil {
				break
			}
			fr, err := wire.ReadFrame(r, nil)
			if err != nil {
				break
			}
			m, err := wire.Decode(fr)
			if err != nil {
				continue
			}
			i := int(dir & 1)
			o, err := dp.eng[i].Receive(uint32(1-i), m)
			if err != nil {
				if err.Error() == "" {
					t.Fatalf("node %d refused a %v without a reason", i, m.Type())
				}
				lyingRecover(dp)
				continue
			}
			dp.exec(i, o)
			if len(o.Disconnects) > 0 {
				lyingRecover(dp)
				continue
			}
			if dir&2 != 0 && dp.eng[0].Role() == engine.Primary {
				if id, o, err := dp.eng[0].StartWrite(int64(dir>>2)*4096, bytes.Repeat([]byte{dir}, 4096), dir&4 != 0); err == nil {
					dp.exec(0, o)
					dp.exec(0, dp.eng[0].LocalWriteDone(id, nil))
				}
			}
			if !lyingDeliver(dp) {
				lyingRecover(dp)
			}
		}
	})
}

// lyingDeliver delivers what is queued, in both directions, until nothing
// is left or a node refuses (false).
func lyingDeliver(dp *dataPair) bool {
	for rounds := 0; len(dp.queue[0])+len(dp.queue[1]) > 0; rounds++ {
		if rounds > 64 {
			dp.t.Fatal("the nodes keep talking: 64 rounds of deliveries after a lie")
		}
		for i := range dp.queue {
			q := dp.queue[i]
			dp.queue[i] = nil
			for _, m := range q {
				o, err := dp.eng[i].Receive(uint32(1-i), m)
				if err != nil {
					if err.Error() == "" {
						dp.t.Fatalf("node %d refused a %v without a reason", i, m.Type())
					}
					return false
				}
				dp.exec(i, o)
				if len(o.Disconnects) > 0 {
					return false
				}
			}
		}
	}
	return true
}

// lyingRecover disconnects the pair, as the link does on a refusal, and
// connects it again; a handshake the lie made fail leaves them apart.
func lyingRecover(dp *dataPair) {
	dp.cut("refused")
	for i := range dp.eng {
		o, err := dp.eng[i].Connected(uint32(1 - i))
		if err != nil {
			continue
		}
		dp.exec(i, o)
	}
	if !lyingDeliver(dp) {
		dp.cut("refused again")
	}
}

// honestTraffic is a seed: the frames of a pair's handshake and the
// start of its full sync (connect), or of a few writes and flushes after
// it, each preceded by the byte that routes it (to the other node if
// swap); at most 64 KiB of them.
func honestTraffic(f *testing.F, proto byte, connect, swap bool) []byte {
	var out []byte
	record := connect
	dp := newDataPair(f, proto, nil)
	dp.tap = func(to int, m wire.Message) {
		if record && len(out) < 64<<10 {
			if swap {
				to = 1 - to
			}
			out = wire.AppendFrame(append(out, byte(to)), m)
		}
	}
	dp.exec(0, must(dp.eng[0].Promote(true)))
	dp.connect()
	dp.resync(0, 4096)
	dp.inSync()
	record = !connect
	for k := range 3 {
		dp.write(0, int64(k)*4096, bytes.Repeat([]byte{byte(k)}, 4096))
		_, o, err := dp.eng[0].StartFlush()
		if err != nil {
			f.Fatal(err)
		}
		dp.exec(0, o)
		dp.drain()
	}
	return out
}
