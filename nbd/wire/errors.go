package wire

import "errors"

var (
	// ErrBadMagic is returned by ReadOption and ParseRequest when a message
	// does not start with its magic: the stream cannot be resynchronised.
	ErrBadMagic = errors.New("nbd: bad magic")
	// ErrClientFlags is returned by ParseClientFlags for unknown client flags
	// or a client that does not speak fixed newstyle.
	ErrClientFlags = errors.New("nbd: unsupported client flags")
	// ErrOptionTooLong is returned by ReadOption when an option's data is
	// longer than the limit; its data was not read.
	ErrOptionTooLong = errors.New("nbd: option data too long")
	// ErrMalformed is returned by the option-data parsers for data that does
	// not match the option's layout.
	ErrMalformed = errors.New("nbd: malformed option data")
)
