package wire

import "errors"

var (
	// ErrMalformed is wrapped by every decoder here (ReadMySQLPacket,
	// ParseGreeting, ParseServerError, ParseAuthSwitch, ReadRecord,
	// ParseReply) for bytes that do not follow the protocol.
	ErrMalformed = errors.New("malformed message")

	// ErrTooLarge is returned by ReadMySQLPacket and ReadRecord when a
	// length exceeds the caller's limit.
	ErrTooLarge = errors.New("message too large")
)
