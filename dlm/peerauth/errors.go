package peerauth

import "errors"

var (
	// ErrNoSecret is returned by Handshake when the local secret is empty
	// or shorter than MinSecretLen: no connection is authenticated without
	// one.
	ErrNoSecret = errors.New("peer auth: no shared secret configured")
	// ErrBadProof is returned by Handshake when the peer's proof does not
	// verify: it does not hold our secret.
	ErrBadProof = errors.New("peer auth: peer's proof does not match our shared secret")
	// ErrRefused is returned by Handshake when the peer rejected our proof:
	// our secret differs from the peer's.
	ErrRefused = errors.New("peer auth: peer refused our proof (shared secrets differ)")
	// ErrProtocol is returned by Handshake for a malformed or unexpected
	// message, a protocol version or purpose mismatch, or a role clash.
	ErrProtocol = errors.New("peer auth: protocol error")
)
