package frameproxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/replicad/replicad/replication/wire"
)

// Rewrite sees each frame the dialer sends, as its header and (possibly
// compressed) payload, and returns the bytes to send instead: the frame
// itself, another, several, or nothing.
type Rewrite func(head, payload []byte) []byte

// Proxy listens on loopback and relays every connection to a target.
type Proxy struct {
	l       net.Listener
	target  string
	rewrite Rewrite
	logf    func(format string, args ...any)
	wg      sync.WaitGroup
	mu      struct {
		sync.Mutex
		conns int
		open  []net.Conn
	}
}

// New starts a proxy to target; rewrite (nil: none) sees the dialer's
// frames, logf (nil: none) relay errors other than a closed connection.
func New(target string, rewrite Rewrite, logf func(format string, args ...any)) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{l: l, target: target, rewrite: rewrite, logf: logf}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is where the dialing node should connect.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Conns is how many connections were relayed.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.conns
}

// Close stops listening, closes every relayed connection and waits for
// the relays to end.
func (p *Proxy) Close() {
	p.l.Close()
	p.mu.Lock()
	for _, c := range p.mu.open {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) serve() {
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
		p.mu.open = append(p.mu.open, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			io.Copy(in, out)
			in.Close()
		}()
		go func() {
			defer p.wg.Done()
			if err := p.relay(out, in); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && p.logf != nil {
				p.logf("frameproxy: %v", err)
			}
			out.Close()
		}()
	}
}

// relay copies the dialer's side: the handshake as is, then frame by
// frame through rewrite.
func (p *Proxy) relay(dst io.Writer, src io.Reader) error {
	r := bufio.NewReaderSize(src, 1<<20)
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
	for {
		head := make([]byte, wire.HeaderSize)
		if _, err := io.ReadFull(r, head); err != nil {
			return err
		}
		_, _, n, err := wire.ParseHeader(head)
		if err != nil {
			return err
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return err
		}
		out := append(head, payload...)
		if p.rewrite != nil {
			out = p.rewrite(head, payload)
		}
		if len(out) > 0 {
			if _, err := dst.Write(out); err != nil {
				return err
			}
		}
	}
}
