package localproto

import "errors"

var (
	// ErrMalformed is returned by Decode and ReadFrame for bytes that are
	// not a well-formed message.
	ErrMalformed = errors.New("dlm local protocol: malformed message")
	// ErrVersion is returned by Decode for another protocol version.
	ErrVersion = errors.New("dlm local protocol: unsupported version")
	// ErrTooLarge is returned by ReadFrame for a frame over its limit.
	ErrTooLarge = errors.New("dlm local protocol: frame too large")
)
