package peerauth

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// acceptorTranscript runs a real handshake over net.Pipe and returns what
// the acceptor wrote (its hello, then its verdict with its proof): a
// realistic seed, which fails against a new dialer only because the
// dialer's nonce differs.
func acceptorTranscript(tb testing.TB, cfg Config) []byte {
	tb.Helper()
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	dl := time.Now().Add(10 * time.Second)
	c1.SetDeadline(dl)
	c2.SetDeadline(dl)
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := Handshake(struct {
			io.Reader
			io.Writer
		}{c2, io.MultiWriter(c2, &out)}, cfg, Acceptor)
		done <- err
	}()
	_, derr := Handshake(c1, Config{Secret: cfg.Secret, Purpose: cfg.Purpose, Node: 1, Incarnation: 7}, Dialer)
	if aerr := <-done; derr != nil || aerr != nil {
		tb.Fatalf("recording a handshake: dialer %v, acceptor %v", derr, aerr)
	}
	return out.Bytes()
}

// msgs concatenates framed messages.
func msgs(parts ...[]byte) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		writeMsg(&b, p)
	}
	return b.Bytes()
}

// FuzzDialer feeds arbitrary bytes to the dialer side as everything the
// acceptor says (its hello, then its verdict and proof): the dialer must
// fail cleanly with a classified error, never panic, hang or authenticate
// without the secret; and what it wrote meanwhile is well formed: its own
// hello, then at most a proof and a refusal.
func FuzzDialer(f *testing.F) {
	good := &hello{role: Acceptor, node: 2, inc: 3, purpose: "dlm"}
	h := good.marshal()
	f.Add(acceptorTranscript(f, Config{Secret: secret, Purpose: "dlm", Node: 2, Incarnation: 3}))
	f.Add(append(msgs(h), msgs(append(append([]byte{}, magicOK...), make([]byte, 32)...))...))
	f.Add(append(msgs(h), msgs(append(append([]byte{}, magicNo...), "wrong secret"...))...))
	f.Add(append(msgs(h), msgs(magicProof)...))
	f.Add(msgs(h))
	f.Add(msgs((&hello{role: Dialer, node: 2, purpose: "dlm"}).marshal()))
	f.Add(msgs((&hello{role: Acceptor, node: 2, purpose: "other"}).marshal()))
	f.Add(msgs(append(append([]byte{}, h[:4]...), append([]byte{version + 1}, h[5:]...)...)))
	f.Add(append([]byte{0xff, 0xff}, h...))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var sent bytes.Buffer
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(b), &sent}
		p, err := Handshake(rw, Config{Secret: secret, Purpose: "dlm", Node: 1, Incarnation: 7}, Dialer)
		if err == nil {
			t.Fatalf("authenticated node %d from fuzz input without the secret", p.Node)
		}
		if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrRefused) && !errors.Is(err, ErrBadProof) &&
			err != io.EOF && err != io.ErrUnexpectedEOF {
			t.Fatalf("unclassified error: %v", err)
		}
		if p.Incarnation != 0 {
			t.Fatalf("a failed handshake returned incarnation %d: only a verified peer has one", p.Incarnation)
		}
		checkDialerOutput(t, sent.Bytes())
	})
}

// checkDialerOutput: the dialer writes its hello, then possibly its proof,
// then possibly a refusal, in that order, each a well-formed message.
func checkDialerOutput(t *testing.T, out []byte) {
	t.Helper()
	r := bytes.NewReader(out)
	b, err := readMsg(r)
	if err != nil {
		t.Fatalf("the dialer did not send a hello: %v", err)
	}
	if me, err := parseHello(b); err != nil || me.role != Dialer || me.node != 1 || me.purpose != "dlm" {
		t.Fatalf("the dialer's hello: %+v, %v", me, err)
	}
	next := [][]byte{magicProof, magicNo}
	for r.Len() > 0 {
		b, err := readMsg(r)
		if err != nil {
			t.Fatalf("the dialer wrote a malformed message after its hello: %v", err)
		}
		for len(next) > 0 && !bytes.HasPrefix(b, next[0]) {
			next = next[1:]
		}
		switch {
		case len(next) == 0:
			t.Fatalf("the dialer wrote %q out of order (hello, proof, refusal)", b)
		case bytes.Equal(next[0], magicProof) && len(b) != len(magicProof)+32:
			t.Fatalf("the dialer's proof is %d bytes", len(b))
		}
		next = next[1:]
	}
}
