// Package peerauth authenticates the two ends of a replicad peer connection
// with a shared secret: an HMAC-SHA256 challenge-response with a fresh
// 32-byte nonce from each side, so neither side ever sends the secret and a
// recorded exchange cannot be replayed.
//
// The exchange, on a fresh stream, the dialer speaking first (each message
// is a 2-byte big-endian length and a body):
//
//	D -> A  hello(D)  = "RPAH" v1 role=D node inc nonce(32) purpose
//	A -> D  hello(A)  = same, role=A
//	D -> A  proof(D)  = "RPAP" HMAC(secret, label | purpose | "D" | hello(D) | hello(A))
//	A -> D  verdict   = "RPAK" + proof(A) (HMAC with "A"), or "RPAN" + reason
//	D -> A  verdict   = "RPAK", or "RPAN" + reason
//
// Each proof covers both hellos, so it binds both nonces, both node ids and
// incarnations, the purpose (the protocol the connection is for, so a DLM
// connection cannot be replayed into the replication protocol) and the
// prover's role (so a proof cannot be reflected back at its sender). A side
// that rejects the other's proof says so before closing, so the wrong end
// learns "the peer refused our proof" rather than seeing a bare EOF. A
// missing secret is refused before any byte is sent.
//
// The package is transport-agnostic: Handshake takes any io.ReadWriter, and
// callers set deadlines on their connection.
package peerauth
