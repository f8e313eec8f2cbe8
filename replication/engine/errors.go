package engine

import "errors"

var (
	// ErrNotPrimary is returned by StartWrite on a secondary.
	ErrNotPrimary = errors.New("volume is not primary here")
	// ErrNotUpToDate is returned by Promote when the local data is not
	// UpToDate and force was not given.
	ErrNotUpToDate = errors.New("local data is not UpToDate")
	// ErrPeerPrimary is returned by Promote when a connected peer is primary
	// and two primaries are not allowed.
	ErrPeerPrimary = errors.New("a peer is primary")
	// ErrProtocol is returned by Receive for a message that breaks the
	// protocol (out of sequence, wrong state, unknown peer); the caller
	// closes the connection.
	ErrProtocol = errors.New("replication protocol violation")
	// ErrWritesInFlight is returned by Demote while a peer has not yet
	// written every write: a new primary's writes could reach a third
	// node before them.
	ErrWritesInFlight = errors.New("writes still in flight to peers")
	// ErrSuspended is returned by StartWrite, StartZero and StartFlush
	// while I/O is suspended: the caller waits for Suspended to end.
	ErrSuspended = errors.New("I/O is suspended")
	// ErrUnknownPeer is returned for a node that is not a configured peer.
	ErrUnknownPeer = errors.New("not a configured peer")
)
