package integration

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/klauspost/compress/s2"

	"github.com/replicad/replicad/replication/wire"
)

// corruptingProxy relays replication connections to a node and, when armed,
// flips one byte inside the data of the next Write frame for a given
// offset, going from the dialing node to the accepting one.
//
// The dialing side's bytes are, in order: the peer-auth handshake
// (internal/peerauth: messages with a 2-byte big-endian length; the
// dialer's last one is the "RPAK" verdict), then replication/wire frames.
// The other direction is relayed untouched.
type corruptingProxy struct {
	t      *testing.T
	l      net.Listener
	target string
	wg     sync.WaitGroup
	mu     struct {
		sync.Mutex
		armed     bool
		offset    uint64
		conns     int
		corrupted int
		writes    int // Write frames seen
		conn      []net.Conn
	}
}

func newCorruptingProxy(t *testing.T, target string) *corruptingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &corruptingProxy{t: t, l: l, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *corruptingProxy) addr() string { return p.l.Addr().String() }

// arm corrupts the next Write frame at offset.
func (p *corruptingProxy) arm(offset uint64) {
	p.mu.Lock()
	p.mu.armed, p.mu.offset = true, offset
	p.mu.Unlock()
}

// counts returns how many connections were relayed, Write frames seen and
// frames corrupted.
func (p *corruptingProxy) counts() (conns, writes, corrupted int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.conns, p.mu.writes, p.mu.corrupted
}

func (p *corruptingProxy) close() {
	p.l.Close()
	p.mu.Lock()
	for _, c := range p.mu.conn {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *corruptingProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.mu.conns++
		p.mu.conn = append(p.mu.conn, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			io.Copy(in, out)
			in.Close()
		}()
		go func() {
			defer p.wg.Done()
			if err := p.relayFrames(out, in); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.t.Logf("proxy: %v", err)
			}
			out.Close()
		}()
	}
}

// relayFrames copies the dialer's side, parsing it to find Write frames.
func (p *corruptingProxy) relayFrames(dst io.Writer, src io.Reader) error {
	r := bufio.NewReaderSize(src, 1<<20)
	// The peer-auth handshake, relayed as is.
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(r, msg); err != nil {
			return err
		}
		if _, err := dst.Write(append(hdr[:], msg...)); err != nil {
			return err
		}
		if bytes.HasPrefix(msg, []byte("RPAN")) {
			_, err := io.Copy(dst, r) // refused: nothing more to parse
			return err
		}
		if bytes.HasPrefix(msg, []byte("RPAK")) {
			break
		}
	}
	head := make([]byte, wire.HeaderSize)
	for {
		if _, err := io.ReadFull(r, head); err != nil {
			return err
		}
		typ, flags, n, err := wire.ParseHeader(head)
		if err != nil {
			return err
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return err
		}
		if typ == wire.TypeWrite {
			plain := payload
			if flags&wire.FlagS2 != 0 {
				if plain, err = s2.Decode(nil, payload); err != nil {
					return err
				}
			}
			m, err := wire.Decode(wire.Frame{Type: typ, Payload: plain})
			if err != nil {
				return err
			}
			w := m.(*wire.Write)
			p.mu.Lock()
			p.mu.writes++
			if p.mu.armed && w.Offset == p.mu.offset && len(w.Data) > 0 {
				// Flip a byte in the middle of the data: the frame stays
				// well formed, only its crc32c no longer matches.
				plain[wire.WriteFixed+len(w.Data)/2] ^= 0x5a
				if flags&wire.FlagS2 != 0 {
					payload = s2.Encode(nil, plain)
					wire.PutHeader(head, typ, flags, len(payload))
				}
				p.mu.armed = false
				p.mu.corrupted++
			}
			p.mu.Unlock()
		}
		if _, err := dst.Write(append(head, payload...)); err != nil {
			return err
		}
	}
}
