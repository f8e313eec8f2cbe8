package replication

import (
	"bytes"
	"sync"
	"testing"

	"github.com/replicad/replicad/internal/frameproxy"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/wire"
)

// TestLyingSecondary: a proxy between the nodes slips a message the
// secondary never sent into the link, ahead of one it did send, and the
// primary must lose nothing: its clients' writes keep completing, its
// data is what they wrote, the link recovers (reconnecting where the lie
// was refused, with the reason in its events; standing alone, as DRBD
// does, when the peer claims to be primary too, until an operator
// connects), and an online verify then finds the two copies equal.
func TestLyingSecondary(t *testing.T) {
	junk := bytes.Repeat([]byte{0xdd}, 4096)
	all := make([]uint64, 64)
	for i := range all {
		all[i] = ^uint64(0)
	}
	lies := []struct {
		name       string
		frame      []byte
		refused    bool // the primary must drop the connection
		standAlone bool // and wait for an operator
	}{
		{"a write to the primary", wire.AppendFrame(nil, &wire.Write{Seq: 1 << 20, CRC: wire.Checksum(junk), Data: junk}), true, false},
		{"a zeroing of the primary", wire.AppendFrame(nil, &wire.Zero{Seq: 1 << 20, Length: 1 << 20}), true, false},
		{"resync data for the primary", wire.AppendFrame(nil, &wire.ResyncData{CRC: wire.Checksum(junk), Data: junk}), true, false},
		{"an acknowledgement of writes never sent", wire.AppendFrame(nil, &wire.WriteAck{Seq: 1 << 40}), true, false},
		// Ignored: a protocol A or B peer acknowledges flushes nothing
		// waits for.
		{"a flush acknowledgement for no flush", wire.AppendFrame(nil, &wire.FlushAck{Epoch: 1 << 40}), false, false},
		{"a second hello", wire.AppendFrame(nil, &wire.Hello{Version: 1, Volume: "r0", NodeID: 0, DataSize: 1 << 20, Current: 42}), true, false},
		{"the end of a resync nobody started", wire.AppendFrame(nil, &wire.SyncDone{Current: 42}), true, false},
		{"a bitmap of everything", wire.AppendFrame(nil, &wire.Bitmap{Last: true, Words: all}), true, false},
		{"verify results nobody asked for", wire.AppendFrame(nil, &wire.DigestReply{Kind: wire.DigestVerify, Length: 1 << 20, Unequal: all[:4]}), true, false},
		{"a claim to be primary with a new generation", wire.AppendFrame(nil, &wire.State{Role: uint8(engine.Primary), Disk: uint8(engine.UpToDate), Current: 42}), true, true},
		{"a frame that does not decode", append(wire.AppendFrame(nil, &wire.Ping{})[:0:0], lieHeader(wire.TypeWrite, 3)...), true, false},
	}
	for _, lie := range lies {
		t.Run(lie.name, func(t *testing.T) {
			var mu sync.Mutex
			var armed []byte
			var proxy *frameproxy.Proxy
			nodes := twoNodesTransport(t, func(id uint32, c *TransportConfig) {
				if id != 0 { // node 0 dials node 1: its frames pass the proxy
					return
				}
				var err error
				proxy, err = frameproxy.New(c.Peers[1], func(head, payload []byte) []byte {
					mu.Lock()
					defer mu.Unlock()
					out := append(armed, append(head, payload...)...)
					armed = nil
					return out
				}, t.Logf)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(proxy.Close)
				c.Peers[1] = proxy.Addr()
			})
			sec, pri := nodes[0], nodes[1]
			promoteInSync(t, pri, sec)
			shadow := map[int64][]byte{}
			write := func(i int) {
				t.Helper()
				off := int64(i) * (64 << 10)
				data := bytes.Repeat([]byte{byte(i + 1)}, 4096)
				if err := pri.rep.WriteAt(ctx, data, off, false); err != nil {
					t.Fatalf("write %d on the primary: %v", i, err)
				}
				shadow[off] = data
			}
			for i := range 8 {
				write(i)
			}
			events := pri.rep.Subscribe()
			defer pri.rep.Unsubscribe(events)
			conns := proxy.Conns()
			mu.Lock()
			armed = lie.frame
			mu.Unlock()
			for i := 8; i < 32; i++ { // their acknowledgements carry the lie
				write(i)
			}
			mu.Lock()
			sent := armed == nil
			mu.Unlock()
			if !sent {
				t.Fatal("the lie never went out")
			}
			waitFor(t, "the link to recover or stand alone", func() bool {
				return inSync(pri) && inSync(sec) || peerState(pri).Conn == engine.StandAlone
			})
			if p := peerState(pri); p.Conn == engine.StandAlone {
				// As DRBD does when its peer claims to be primary too: no
				// more talking until an operator says so.
				if !lie.standAlone {
					t.Fatalf("the primary stands alone: %s", p.LastError)
				}
				t.Logf("stands alone: %s", p.LastError)
				if err := pri.rep.Connect(0, false); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "the link to recover", func() bool { return inSync(pri) && inSync(sec) })
			} else if lie.standAlone {
				t.Fatal("the primary went on talking to a peer that claimed to be primary too")
			}
			if lie.refused {
				if proxy.Conns() == conns {
					t.Fatal("the primary kept the connection that lied")
				}
				reason := ""
				for len(events) > 0 && reason == "" {
					if e := <-events; e.What == "connection" && e.Reason != "" {
						reason = e.Reason
					}
				}
				if reason == "" {
					t.Fatal("the primary dropped the connection without saying why")
				}
				t.Logf("refused: %s", reason)
			}
			for i := 32; i < 40; i++ {
				write(i)
			}
			got := make([]byte, 4096)
			for off, want := range shadow {
				if err := pri.vol.ReadAt(ctx, got, off); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("the primary's block at %d changed: %x..., want %x...", off, got[:4], want[:4])
				}
			}
			waitFor(t, "the link to settle", func() bool { return inSync(pri) && inSync(sec) })
			if err := pri.rep.StartVerify(0); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the verify", func() bool {
				v := peerState(pri).LastVerify
				return peerState(pri).Repl == engine.Established && v.Checked == pri.vol.Size()
			})
			if d := peerState(pri).LastVerify.Differences; d != 0 {
				t.Fatalf("verify found %d blocks differing after the lie", d)
			}
		})
	}
}

// lieHeader is a frame header of type t announcing n payload bytes,
// followed by n zero bytes.
func lieHeader(t wire.Type, n int) []byte {
	b := make([]byte, wire.HeaderSize+n)
	wire.PutHeader(b, t, 0, n)
	return b
}
