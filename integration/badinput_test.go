package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicad/replicad/nbd"
	"github.com/replicad/replicad/nbd/wire"
)

func hostport(t *testing.T, uri, export string) string {
	t.Helper()
	return strings.TrimSuffix(strings.TrimPrefix(uri, "nbd://"), "/"+export)
}

// TestBadInputAgainstDaemon throws malformed NBD traffic at a running daemon
// while a healthy client keeps reading and writing. Each bad connection gets
// the protocol's answer or is closed; the healthy client never fails and the
// daemon keeps answering the control API.
func TestBadInputAgainstDaemon(t *testing.T) {
	n := newNode(t, volumeSpec{Name: "v", Size: "64MiB"})
	n.start()
	n.create("v")
	addr := hostport(t, n.uri("v"), "v")
	ctx := context.Background()

	healthy, err := nbd.Dial(ctx, "tcp", addr, "v", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer healthy.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var healthyErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		p := bytes.Repeat([]byte{7}, 4096)
		got := make([]byte, 4096)
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			off := (i % 1000) * 4096
			if err := healthy.WriteAt(ctx, p, off, false); err != nil {
				healthyErr = err
				return
			}
			if err := healthy.ReadAt(ctx, got, off); err != nil || !bytes.Equal(got, p) {
				healthyErr = errors.Join(err, errors.New("healthy client read back wrong data"))
				return
			}
		}
	}()

	be := binary.BigEndian
	option := func(id uint32, data []byte) []byte {
		b := be.AppendUint64(nil, wire.MagicOption)
		b = be.AppendUint32(b, id)
		b = be.AppendUint32(b, uint32(len(data)))
		return append(b, data...)
	}
	goVol := func() []byte {
		d := be.AppendUint32(nil, 1)
		d = append(d, 'v')
		d = be.AppendUint16(d, 0)
		return d
	}()
	req := func(r wire.Request) []byte {
		var b [wire.RequestSize]byte
		wire.PutRequest(&b, r)
		return b[:]
	}
	flags := be.AppendUint32(nil, wire.ClientFixedNewstyle|wire.ClientNoZeroes)
	handshake := append(append([]byte{}, flags...), option(wire.OptGo, goVol)...)

	cases := []struct {
		name string
		send []byte
		// wantErrnos are the error replies expected before the server
		// closes or the input ends (nil: just expect a close).
		wantErrnos []uint32
	}{
		{"garbage instead of a handshake", bytes.Repeat([]byte{0xde, 0xad}, 512), nil},
		{"unknown client flags", be.AppendUint32(nil, 0xffffffff), nil},
		{"truncated option magic", append(append([]byte{}, flags...), 'I', 'H', 'A'), nil},
		{"option with a 2 GiB length", append(append([]byte{}, flags...), be.AppendUint32(be.AppendUint32(be.AppendUint64(nil, wire.MagicOption), wire.OptGo), 1<<31)...), nil},
		{"truncated option header", append(append([]byte{}, flags...), option(wire.OptGo, nil)[:12]...), nil},
		{"unknown option then abort", append(append(append([]byte{}, flags...), option(4242, []byte("?"))...), option(wire.OptAbort, nil)...), nil},
		{"garbage after GO", append(append([]byte{}, handshake...), bytes.Repeat([]byte{0xff}, 64)...), nil},
		{"truncated request", append(append([]byte{}, handshake...), req(wire.Request{Type: wire.CmdRead, Length: 4096})[:20]...), nil},
		{"write announcing 1 GiB", append(append([]byte{}, handshake...), req(wire.Request{Type: wire.CmdWrite, Length: 1 << 30})...), nil},
		{"unknown command, past-end read and write, unknown flag", bytes.Join([][]byte{
			handshake,
			req(wire.Request{Type: 99, Cookie: 1}),
			req(wire.Request{Type: wire.CmdRead, Cookie: 2, Offset: 1 << 40, Length: 512}),
			req(wire.Request{Type: wire.CmdWrite, Cookie: 3, Offset: 64 << 20, Length: 4}), {1, 2, 3, 4},
			req(wire.Request{Type: wire.CmdFlush, Cookie: 4, Flags: 1 << 12}),
			req(wire.Request{Type: wire.CmdRead, Cookie: 5, Length: 64 << 20}),
			req(wire.Request{Type: wire.CmdDisc}),
		}, nil), []uint32{wire.EINVAL, wire.EINVAL, wire.ENOSPC, wire.EINVAL, wire.EINVAL}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(30 * time.Second))
			nc.Write(c.send)
			if tc, ok := nc.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			all, err := io.ReadAll(nc)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("server neither answered nor closed the connection")
			}
			if c.wantErrnos != nil {
				got := replyErrnos(t, all)
				if len(got) != len(c.wantErrnos) {
					t.Fatalf("got error replies %v, want %v", got, c.wantErrnos)
				}
				seen := map[uint32]int{}
				for _, e := range got {
					seen[e]++
				}
				for _, e := range c.wantErrnos {
					seen[e]--
				}
				for e, k := range seen {
					if k != 0 {
						t.Fatalf("error replies %v, want %v (errno %d off by %d)", got, c.wantErrnos, e, k)
					}
				}
			}
		})
	}
	close(stop)
	wg.Wait()
	if healthyErr != nil {
		t.Fatalf("a healthy client was disturbed by bad input on other connections: %v", healthyErr)
	}
	if v := n.volume("v"); v.State != "up" || v.DiskError != "" {
		t.Fatalf("volume after bad input: %+v", v)
	}
}

// replyErrnos parses the transmission part of a server's output: after the
// handshake replies (skipped up to the GO ACK), a run of simple replies
// without payload.
func replyErrnos(t *testing.T, b []byte) []uint32 {
	t.Helper()
	be := binary.BigEndian
	b = b[wire.GreetingSize:]
	for {
		if len(b) < 20 {
			t.Fatalf("handshake reply truncated")
		}
		typ, n := be.Uint32(b[12:]), be.Uint32(b[16:])
		b = b[20+n:]
		if typ == wire.RepAck {
			break
		}
	}
	var out []uint32
	for len(b) >= wire.ReplySize {
		if be.Uint32(b) != wire.MagicSimpleReply {
			t.Fatalf("bad reply magic % x", b[:4])
		}
		out = append(out, be.Uint32(b[4:]))
		b = b[wire.ReplySize:]
	}
	return out
}
