package frameproxy

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/replicad/replicad/replication/wire"
)

// authMsg is a peer-auth handshake message: a 2-byte length, then body.
func authMsg(body string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...)
}

// TestRelay: the handshake passes untouched, then every frame goes through
// the rewrite (here: Pings dropped, each Goodbye doubled), and the other
// direction is relayed as is.
func TestRelay(t *testing.T) {
	target, got := newTarget(t, "from the target")
	rewrites := 0
	p, c := dialThrough(t, target, func(head, payload []byte) []byte {
		rewrites++
		typ, _, _, _ := wire.ParseHeader(head)
		frame := append(head, payload...)
		switch typ {
		case wire.TypePing:
			return nil
		case wire.TypeGoodbye:
			return append(frame, frame...)
		}
		return frame
	})
	handshake := append(authMsg("RPAH hello"), authMsg("RPAK")...)
	ack := wire.AppendFrame(nil, &wire.WriteAck{Seq: 7})
	bye := wire.AppendFrame(nil, &wire.Goodbye{Reason: "done"})
	sent := append(append(append(append([]byte(nil), handshake...), wire.AppendFrame(nil, &wire.Ping{})...), ack...), bye...)
	if _, err := c.Write(sent); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, len("from the target"))
	if _, err := io.ReadFull(c, back); err != nil || string(back) != "from the target" {
		t.Fatalf("the other direction: %q, %v", back, err)
	}
	c.(*net.TCPConn).CloseWrite()
	want := append(append(append([]byte(nil), handshake...), ack...), append(bye, bye...)...)
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the target got %q, want %q", b, want)
	}
	c.Close()
	if rewrites != 3 || p.Conns() != 1 {
		t.Fatalf("%d frames rewritten, %d connections; want 3 and 1", rewrites, p.Conns())
	}
}

// TestRefusedHandshake: after the dialer's "RPAN" verdict nothing is
// parsed as frames: the rest passes as is.
func TestRefusedHandshake(t *testing.T) {
	target, got := newTarget(t, "")
	_, c := dialThrough(t, target, func(head, payload []byte) []byte {
		t.Error("a frame was rewritten after a refused handshake")
		return nil
	})
	sent := append(authMsg("RPAN wrong secret"), "not a frame at all"...)
	c.Write(sent)
	c.(*net.TCPConn).CloseWrite()
	if b := <-got; !bytes.Equal(b, sent) {
		t.Fatalf("the target got %q, want %q", b, sent)
	}
	c.Close()
}

// newTarget listens on loopback for one connection: it sends greeting,
// then reads until the other side stops writing, and hands that over.
func newTarget(t *testing.T, greeting string) (addr string, got <-chan []byte) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte(greeting))
		b, _ := io.ReadAll(c)
		ch <- b
	}()
	return l.Addr().String(), ch
}

// dialThrough starts a proxy to target with rewrite and connects to it.
func dialThrough(t *testing.T, target string, rewrite Rewrite) (*Proxy, net.Conn) {
	t.Helper()
	p, err := New(target, rewrite, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}
