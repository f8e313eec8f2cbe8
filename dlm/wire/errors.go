package wire

import "errors"

var (
	// ErrMalformed is returned by Unmarshal and ReadFrame for bytes that are
	// not a well-formed envelope or frame.
	ErrMalformed = errors.New("dlm wire: malformed message")
	// ErrVersion is returned by Unmarshal for an envelope of another
	// protocol version.
	ErrVersion = errors.New("dlm wire: unsupported protocol version")
	// ErrTooLarge is returned by ReadFrame and WriteFrame for a frame over
	// MaxFrame bytes.
	ErrTooLarge = errors.New("dlm wire: frame too large")
)
