package wire

import "errors"

var (
	// ErrBadFrame is returned by ReadFrame for a bad magic, an unknown flag
	// or an oversized length, and by Decode for a payload that does not fit
	// its message type.
	ErrBadFrame = errors.New("replication wire: malformed frame")
	// ErrChecksum is returned by Decode when a data payload fails its crc32c.
	ErrChecksum = errors.New("replication wire: data checksum mismatch")
)
