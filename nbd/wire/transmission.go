package wire

import "fmt"

// Request is a transmission-phase request header.
type Request struct {
	Flags  uint16
	Type   uint16
	Cookie uint64
	Offset uint64
	Length uint32
}

// ParseRequest decodes a 28-byte request header.
func ParseRequest(b *[RequestSize]byte) (Request, error) {
	if m := be.Uint32(b[0:]); m != MagicRequest {
		return Request{}, fmt.Errorf("%w: request magic %#x", ErrBadMagic, m)
	}
	return Request{
		Flags:  be.Uint16(b[4:]),
		Type:   be.Uint16(b[6:]),
		Cookie: be.Uint64(b[8:]),
		Offset: be.Uint64(b[16:]),
		Length: be.Uint32(b[24:]),
	}, nil
}

// PutRequest encodes a request header (for clients and tests).
func PutRequest(b *[RequestSize]byte, r Request) {
	be.PutUint32(b[0:], MagicRequest)
	be.PutUint16(b[4:], r.Flags)
	be.PutUint16(b[6:], r.Type)
	be.PutUint64(b[8:], r.Cookie)
	be.PutUint64(b[16:], r.Offset)
	be.PutUint32(b[24:], r.Length)
}

// PutSimpleReply encodes a simple reply header.
func PutSimpleReply(b []byte, errno uint32, cookie uint64) {
	be.PutUint32(b[0:], MagicSimpleReply)
	be.PutUint32(b[4:], errno)
	be.PutUint64(b[8:], cookie)
}

// allowedFlags are the command flags each command may carry.
func allowedFlags(cmd uint16) uint16 {
	switch cmd {
	case CmdWrite, CmdTrim:
		return CmdFlagFUA
	case CmdWriteZeroes:
		return CmdFlagFUA | CmdFlagNoHole
	}
	return 0
}

// Check validates a request against an export of size bytes whose largest
// payload is maxPayload, returning the protocol error to reply with, or 0.
// The order follows the protocol: unknown commands and flags are EINVAL;
// writes to a read-only export are EPERM; a write past the end is ENOSPC;
// other ranges past the end, zero lengths and oversized reads are EINVAL.
func Check(r Request, size uint64, maxPayload uint32, readOnly bool) uint32 {
	switch r.Type {
	case CmdRead, CmdWrite, CmdFlush, CmdTrim, CmdWriteZeroes, CmdDisc:
	default:
		return EINVAL
	}
	if r.Flags&^allowedFlags(r.Type) != 0 {
		return EINVAL
	}
	switch r.Type {
	case CmdFlush, CmdDisc:
		return 0
	}
	modifies := r.Type != CmdRead
	if modifies && readOnly {
		return EPERM
	}
	if r.Length == 0 {
		return EINVAL
	}
	if (r.Type == CmdRead || r.Type == CmdWrite) && r.Length > maxPayload {
		return EINVAL
	}
	end := r.Offset + uint64(r.Length)
	if end < r.Offset || end > size {
		if r.Type == CmdWrite || r.Type == CmdWriteZeroes {
			return ENOSPC
		}
		return EINVAL
	}
	return 0
}
