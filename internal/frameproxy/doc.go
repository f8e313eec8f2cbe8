// Package frameproxy relays replication connections between two nodes and
// lets a test rewrite the frames the dialing node sends: a corrupted
// payload, a peer that lies. It knows the connection's layout: the
// peer-auth handshake (internal/peerauth: messages with a 2-byte
// big-endian length, the dialer's last one the "RPAK" or "RPAN" verdict),
// relayed untouched, then replication/wire frames.
package frameproxy
