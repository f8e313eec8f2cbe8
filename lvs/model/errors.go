package model

import "errors"

var (
	// ErrUnsupported is wrapped by the *UnsupportedError that
	// Capabilities.Check and CheckBackend return when a backend cannot
	// express a service (scheduler, forwarding method, firewall mark, family).
	ErrUnsupported = errors.New("not supported by backend")

	// ErrBadKey is returned by ParseKey for a malformed service key.
	ErrBadKey = errors.New("malformed service key")

	// ErrUnknownBackend is returned by CheckBackend for a backend name that
	// is not in Backends.
	ErrUnknownBackend = errors.New("unknown backend")
)
