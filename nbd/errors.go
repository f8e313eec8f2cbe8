package nbd

import "errors"

// Sentinels a Backend wraps to choose the error a client sees. Any other
// error is reported as EIO.
var (
	// ErrPermission becomes EPERM (e.g. a write to a secondary's volume).
	ErrPermission = errors.New("nbd: operation not permitted")
	// ErrNoSpace becomes ENOSPC.
	ErrNoSpace = errors.New("nbd: no space")
	// ErrInvalid becomes EINVAL.
	ErrInvalid = errors.New("nbd: invalid request")
	// ErrShutdown becomes ESHUTDOWN (the export is going away).
	ErrShutdown = errors.New("nbd: export shutting down")
)

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("nbd: server closed")
