package replication

import (
	"bytes"
	"sync"
	"testing"

	"github.com/replicad/replicad/internal/frameproxy"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/wire"
)

// lie is a message a proxy slips into a link, and what the node it
// reaches must do.
type lie struct {
	name       string
	frame      []byte
	refused    bool // drop the connection, saying why
	standAlone bool // and wait for an operator
}

// TestLyingSecondary: messages the secondary never sent reach the primary,
// which must lose nothing (see testLie).
func TestLyingSecondary(t *testing.T) {
	junk := bytes.Repeat([]byte{0xdd}, 4096)
	all := make([]uint64, 64)
	for i := range all {
		all[i] = ^uint64(0)
	}
	for _, l := range []lie{
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
		// As DRBD does when its peer claims to be primary too: no more
		// talking until an operator says so.
		{"a claim to be primary with a new generation", wire.AppendFrame(nil, &wire.State{Role: uint8(engine.Primary), Disk: uint8(engine.UpToDate), Current: 42}), true, true},
		{"a frame that does not decode", lieHeader(wire.TypeWrite, 3), true, false},
	} {
		t.Run(l.name, func(t *testing.T) { testLie(t, l, false) })
	}
}

// TestLyingPrimary: messages that break the protocol, which the primary
// never sent, reach the secondary. (A well-formed write is not a lie the
// secondary can tell from the truth: online verify finds what it did.)
func TestLyingPrimary(t *testing.T) {
	junk := bytes.Repeat([]byte{0xdd}, 4096)
	for _, l := range []lie{
		{"a write out of sequence", wire.AppendFrame(nil, &wire.Write{Seq: 1 << 20, CRC: wire.Checksum(junk), Data: junk}), true, false},
		{"an acknowledgement of writes the secondary never sent", wire.AppendFrame(nil, &wire.WriteAck{Seq: 1 << 40}), true, false},
		{"resync data while in sync", wire.AppendFrame(nil, &wire.ResyncData{CRC: wire.Checksum(junk), Data: junk}), true, false},
		{"a second hello", wire.AppendFrame(nil, &wire.Hello{Version: 1, Volume: "r0", NodeID: 0, DataSize: 1 << 20, Current: 42}), true, false},
		{"the end of a resync nobody started", wire.AppendFrame(nil, &wire.SyncDone{Current: 42}), true, false},
		{"a frame that does not decode", lieHeader(wire.TypeWrite, 3), true, false},
	} {
		t.Run(l.name, func(t *testing.T) { testLie(t, l, true) })
	}
}

// testLie slips l into the link from node 0 (the dialer, whose frames pass
// a proxy) to node 1, ahead of a frame node 0 did send; node 0 is the
// primary if primaryLies, else node 1 is. Nothing may be lost: the
// primary's clients' writes keep completing and its data is what they
// wrote; node 1 refuses the lie (with a reason in its events and its
// status's LastDisconnect) and
// reconnects, or stands alone until an operator connects, as l says; and
// an online verify after the recovery finds the two copies equal.
func testLie(t *testing.T, l lie, primaryLies bool) {
	var mu sync.Mutex
	var armed []byte
	var proxy *frameproxy.Proxy
	nodes := twoNodesTransport(t, func(id uint32, c *TransportConfig) {
		if id != 0 {
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
	pri, sec, victim := nodes[1], nodes[0], nodes[1]
	if primaryLies {
		pri, sec = nodes[0], nodes[1]
	}
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
	events := victim.rep.Subscribe()
	defer victim.rep.Unsubscribe(events)
	conns := proxy.Conns()
	mu.Lock()
	armed = l.frame
	mu.Unlock()
	for i := 8; i < 32; i++ { // they, or their acknowledgements, carry the lie
		write(i)
	}
	mu.Lock()
	sent := armed == nil
	mu.Unlock()
	if !sent {
		t.Fatal("the lie never went out")
	}
	waitFor(t, "the link to recover or stand alone", func() bool {
		return inSync(pri) && inSync(sec) || peerState(victim).Conn == engine.StandAlone
	})
	if p := peerState(victim); p.Conn == engine.StandAlone {
		if !l.standAlone {
			t.Fatalf("node %d stands alone: %s", victim.id, p.LastError)
		}
		t.Logf("stands alone: %s", p.LastError)
		if err := victim.rep.Connect(0, false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the link to recover", func() bool { return inSync(pri) && inSync(sec) })
	} else if l.standAlone {
		t.Fatalf("node %d went on talking to a peer that lied", victim.id)
	}
	if l.refused {
		if proxy.Conns() == conns {
			t.Fatalf("node %d kept the connection that lied", victim.id)
		}
		reason := ""
		for len(events) > 0 && reason == "" {
			if e := <-events; e.What == "connection" && e.Reason != "" {
				reason = e.Reason
			}
		}
		if reason == "" {
			t.Fatalf("node %d dropped the connection without saying why", victim.id)
		}
		if ld := peerState(victim).LastDisconnect; ld == "" {
			t.Fatalf("node %d's status does not say why the connection ended (events: %q)", victim.id, reason)
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
	if err := pri.rep.StartVerify(sec.id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the verify", func() bool {
		v := peerState(pri).LastVerify
		return peerState(pri).Repl == engine.Established && v.Checked == pri.vol.Size()
	})
	if d := peerState(pri).LastVerify.Differences; d != 0 {
		t.Fatalf("verify found %d blocks differing after the lie", d)
	}
}

// lieHeader is a frame header of type t announcing n payload bytes,
// followed by n zero bytes.
func lieHeader(t wire.Type, n int) []byte {
	b := make([]byte, wire.HeaderSize+n)
	wire.PutHeader(b, t, 0, n)
	return b
}
