package peerauth

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

var secret = []byte("0123456789abcdef0123")

func pair(t *testing.T, dcfg, acfg Config) (Peer, error, Peer, error) {
	t.Helper()
	c1, c2 := tcpPair(t)
	defer c1.Close()
	defer c2.Close()
	dl := time.Now().Add(10 * time.Second)
	c1.SetDeadline(dl)
	c2.SetDeadline(dl)
	type res struct {
		p   Peer
		err error
	}
	ch := make(chan res, 1)
	go func() {
		p, err := Handshake(c2, acfg, Acceptor)
		if err != nil {
			c2.Close()
		}
		ch <- res{p, err}
	}()
	dp, derr := Handshake(c1, dcfg, Dialer)
	if derr != nil {
		c1.Close()
	}
	r := <-ch
	return dp, derr, r.p, r.err
}

// tcpPair returns both ends of a loopback TCP connection (buffered, unlike
// net.Pipe, as real peers are).
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c2 := <-ch
	if c2 == nil {
		t.Fatal("accept failed")
	}
	return c1, c2
}

func TestSameSecretAuthenticatesBothWays(t *testing.T) {
	d := Config{Secret: secret, Purpose: "dlm", Node: 1, Incarnation: 11}
	a := Config{Secret: secret, Purpose: "dlm", Node: 2, Incarnation: 22}
	dp, derr, ap, aerr := pair(t, d, a)
	if derr != nil || aerr != nil {
		t.Fatalf("handshake failed: dialer %v, acceptor %v", derr, aerr)
	}
	if dp != (Peer{2, 22}) || ap != (Peer{1, 11}) {
		t.Fatalf("identities: dialer saw %+v, acceptor saw %+v", dp, ap)
	}
}

func TestWrongSecretIsRefusedWithClearErrors(t *testing.T) {
	d := Config{Secret: []byte("another-secret-of-20b"), Purpose: "dlm", Node: 1}
	a := Config{Secret: secret, Purpose: "dlm", Node: 2}
	_, derr, _, aerr := pair(t, d, a)
	if !errors.Is(aerr, ErrBadProof) {
		t.Errorf("acceptor: %v, want ErrBadProof", aerr)
	}
	if !errors.Is(derr, ErrRefused) {
		t.Errorf("dialer: %v, want ErrRefused", derr)
	}
}

func TestMissingSecretIsRefusedBeforeAnyIO(t *testing.T) {
	var buf bytes.Buffer
	for _, s := range [][]byte{nil, []byte("short")} {
		_, err := Handshake(&buf, Config{Secret: s, Purpose: "dlm"}, Dialer)
		if !errors.Is(err, ErrNoSecret) {
			t.Errorf("secret %q: %v, want ErrNoSecret", s, err)
		}
	}
	if buf.Len() != 0 {
		t.Fatalf("wrote %d bytes without a secret", buf.Len())
	}
}

func TestPurposeMismatchIsRefused(t *testing.T) {
	_, derr, _, aerr := pair(t, Config{Secret: secret, Purpose: "replication"}, Config{Secret: secret, Purpose: "dlm"})
	if derr == nil || aerr == nil {
		t.Fatalf("mismatched purposes authenticated: %v / %v", derr, aerr)
	}
	if !errors.Is(aerr, ErrProtocol) {
		t.Errorf("acceptor: %v, want ErrProtocol", aerr)
	}
}

// A man in the middle without the secret reflects the dialer's own proof
// back as the acceptor's: the role in the MAC makes it fail.
func TestReflectedProofFails(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	c1.SetDeadline(time.Now().Add(10 * time.Second))
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		h, _ := readMsg(c2)
		hh, _ := parseHello(h)
		hh.role = Acceptor
		writeMsg(c2, hh.marshal())
		p, _ := readMsg(c2)
		writeMsg(c2, magicOK, p[4:])
		io.Copy(io.Discard, c2)
	}()
	_, err := Handshake(c1, Config{Secret: secret, Purpose: "dlm", Node: 1}, Dialer)
	if !errors.Is(err, ErrBadProof) {
		t.Fatalf("reflected proof: %v, want ErrBadProof", err)
	}
}

func TestGarbageIsAProtocolError(t *testing.T) {
	rw := struct {
		io.Reader
		io.Writer
	}{bytes.NewReader([]byte{0, 5, 'h', 'e', 'l', 'l', 'o'}), io.Discard}
	if _, err := Handshake(rw, Config{Secret: secret}, Acceptor); !errors.Is(err, ErrProtocol) {
		t.Fatalf("garbage hello: %v, want ErrProtocol", err)
	}
}

// FuzzAcceptor feeds arbitrary bytes to the acceptor side: it must fail
// cleanly, never panic or authenticate.
func FuzzAcceptor(f *testing.F) {
	h := &hello{role: Dialer, node: 1, inc: 2, purpose: "dlm"}
	var seed bytes.Buffer
	writeMsg(&seed, h.marshal())
	writeMsg(&seed, magicProof, make([]byte, 32))
	f.Add(seed.Bytes())
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(b), io.Discard}
		if _, err := Handshake(rw, Config{Secret: secret, Purpose: "dlm"}, Acceptor); err == nil {
			t.Fatal("authenticated from fuzz input without the secret")
		}
	})
}
