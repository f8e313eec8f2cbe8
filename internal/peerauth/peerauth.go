package peerauth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
)

// MinSecretLen is the shortest accepted shared secret, in bytes.
const MinSecretLen = 16

const (
	version  = 1
	label    = "replicad peer auth v1"
	maxMsg   = 512
	nonceLen = 32
	maxPurp  = 64
)

var (
	magicHello = []byte("RPAH")
	magicProof = []byte("RPAP")
	magicOK    = []byte("RPAK")
	magicNo    = []byte("RPAN")
)

// Role is which end of the connection a side is.
type Role byte

// The two roles.
const (
	Dialer   Role = 'D'
	Acceptor Role = 'A'
)

// Config is one side's identity and secret.
type Config struct {
	Secret      []byte
	Purpose     string // the protocol the connection carries, e.g. "replicad-dlm/1"
	Node        uint32
	Incarnation uint64 // random per process start
}

// Peer is the authenticated identity of the other side.
type Peer struct {
	Node        uint32
	Incarnation uint64
}

type hello struct {
	role    Role
	node    uint32
	inc     uint64
	nonce   [nonceLen]byte
	purpose string
}

func (h *hello) marshal() []byte {
	b := append([]byte{}, magicHello...)
	b = append(b, version, byte(h.role))
	b = binary.BigEndian.AppendUint32(b, h.node)
	b = binary.BigEndian.AppendUint64(b, h.inc)
	b = append(b, h.nonce[:]...)
	b = append(b, byte(len(h.purpose)))
	return append(b, h.purpose...)
}

func parseHello(b []byte) (*hello, error) {
	const fixed = 4 + 2 + 4 + 8 + nonceLen + 1
	if len(b) < fixed || !bytes.Equal(b[:4], magicHello) {
		return nil, fmt.Errorf("%w: not a replicad peer-auth hello", ErrProtocol)
	}
	if b[4] != version {
		return nil, fmt.Errorf("%w: peer speaks peer-auth version %d, we speak %d", ErrProtocol, b[4], version)
	}
	h := &hello{role: Role(b[5])}
	h.node = binary.BigEndian.Uint32(b[6:])
	h.inc = binary.BigEndian.Uint64(b[10:])
	copy(h.nonce[:], b[18:18+nonceLen])
	n := int(b[fixed-1])
	if len(b) != fixed+n || n > maxPurp {
		return nil, fmt.Errorf("%w: bad hello length", ErrProtocol)
	}
	h.purpose = string(b[fixed:])
	return h, nil
}

func writeMsg(w io.Writer, parts ...[]byte) error {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	if len(body) > maxMsg {
		return fmt.Errorf("%w: message of %d bytes", ErrProtocol, len(body))
	}
	buf := binary.BigEndian.AppendUint16(nil, uint16(len(body)))
	_, err := w.Write(append(buf, body...))
	return err
}

func readMsg(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint16(hdr[:])
	if n > maxMsg {
		return nil, fmt.Errorf("%w: message of %d bytes", ErrProtocol, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func proof(secret []byte, purpose string, role Role, mine, theirs []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	m.Write([]byte{byte(len(purpose))})
	m.Write([]byte(purpose))
	m.Write([]byte{byte(role)})
	binary.Write(m, binary.BigEndian, uint16(len(mine)))
	m.Write(mine)
	m.Write(theirs)
	return m.Sum(nil)
}

// Handshake authenticates rw as role. It returns the peer's identity, or
// an error naming what went wrong (ErrNoSecret, ErrBadProof, ErrRefused,
// ErrProtocol, or the stream's error). On error the caller must close the
// connection; when this side refused the peer (ErrBadProof, or a role or
// purpose mismatch), the Peer holds the node id it claimed, unverified.
func Handshake(rw io.ReadWriter, cfg Config, role Role) (Peer, error) {
	if len(cfg.Secret) < MinSecretLen {
		return Peer{}, fmt.Errorf("%w (need at least %d bytes)", ErrNoSecret, MinSecretLen)
	}
	if role != Dialer && role != Acceptor {
		return Peer{}, fmt.Errorf("%w: role %q", ErrProtocol, role)
	}
	if len(cfg.Purpose) > maxPurp {
		return Peer{}, fmt.Errorf("%w: purpose of %d bytes", ErrProtocol, len(cfg.Purpose))
	}
	me := &hello{role: role, node: cfg.Node, inc: cfg.Incarnation, purpose: cfg.Purpose}
	if _, err := rand.Read(me.nonce[:]); err != nil {
		return Peer{}, err
	}
	mine := me.marshal()

	var theirs []byte
	if role == Dialer {
		if err := writeMsg(rw, mine); err != nil {
			return Peer{}, err
		}
	}
	theirs, err := readMsg(rw)
	if err != nil {
		return Peer{}, err
	}
	peer, err := parseHello(theirs)
	if err != nil {
		return Peer{}, err
	}
	if role == Acceptor {
		if err := writeMsg(rw, mine); err != nil {
			return Peer{}, err
		}
	}
	want := Acceptor
	if role == Acceptor {
		want = Dialer
	}
	// A refusal returns the node the peer claimed to be (not
	// authenticated), for the caller's status.
	refuse := func(e error) (Peer, error) {
		writeMsg(rw, magicNo, []byte(e.Error()))
		return Peer{Node: peer.node}, e
	}
	if peer.role != want {
		return refuse(fmt.Errorf("%w: peer claims role %q, expected %q", ErrProtocol, peer.role, want))
	}
	if peer.purpose != cfg.Purpose {
		return refuse(fmt.Errorf("%w: peer wants protocol %q, we serve %q", ErrProtocol, peer.purpose, cfg.Purpose))
	}
	myProof := proof(cfg.Secret, cfg.Purpose, role, mine, theirs)
	wantProof := proof(cfg.Secret, cfg.Purpose, peer.role, theirs, mine)

	verdict := func(b []byte) (ok bool, rest []byte, err error) {
		switch {
		case len(b) >= 4 && bytes.Equal(b[:4], magicOK):
			return true, b[4:], nil
		case len(b) >= 4 && bytes.Equal(b[:4], magicNo):
			return false, nil, fmt.Errorf("%w: peer node %d says: %s", ErrRefused, peer.node, b[4:])
		}
		return false, nil, fmt.Errorf("%w: expected a verdict", ErrProtocol)
	}

	if role == Dialer {
		if err := writeMsg(rw, magicProof, myProof); err != nil {
			return Peer{}, err
		}
		b, err := readMsg(rw)
		if err != nil {
			return Peer{}, err
		}
		_, got, err := verdict(b)
		if err != nil {
			return Peer{}, err
		}
		if !hmac.Equal(got, wantProof) {
			return refuse(fmt.Errorf("%w (peer node %d)", ErrBadProof, peer.node))
		}
		if err := writeMsg(rw, magicOK); err != nil {
			return Peer{}, err
		}
		return Peer{Node: peer.node, Incarnation: peer.inc}, nil
	}

	b, err := readMsg(rw)
	if err != nil {
		return Peer{}, err
	}
	if len(b) < 4 || !bytes.Equal(b[:4], magicProof) {
		if _, _, err := verdict(b); err != nil {
			return Peer{}, err
		}
		return refuse(fmt.Errorf("%w: expected a proof", ErrProtocol))
	}
	if !hmac.Equal(b[4:], wantProof) {
		return refuse(fmt.Errorf("%w (peer node %d)", ErrBadProof, peer.node))
	}
	if err := writeMsg(rw, magicOK, myProof); err != nil {
		return Peer{}, err
	}
	b, err = readMsg(rw)
	if err != nil {
		return Peer{}, err
	}
	if _, _, err := verdict(b); err != nil {
		return Peer{}, err
	}
	return Peer{Node: peer.node, Incarnation: peer.inc}, nil
}
