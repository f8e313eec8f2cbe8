package wire

import (
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf8"
)

var be = binary.BigEndian

// MaxNameLength is the protocol's limit on export names and other strings.
const MaxNameLength = 4096

// Greeting is the server's first message in fixed newstyle.
func Greeting() []byte {
	b := make([]byte, GreetingSize)
	be.PutUint64(b[0:], MagicNBD)
	be.PutUint64(b[8:], MagicOption)
	be.PutUint16(b[16:], FlagFixedNewstyle|FlagNoZeroes)
	return b
}

// ParseClientFlags checks the client's 32-bit flags. The server must drop a
// client that sets flags it does not know; replicad also requires fixed
// newstyle.
func ParseClientFlags(f uint32) (noZeroes bool, err error) {
	if f&^ClientKnownFlags != 0 {
		return false, fmt.Errorf("%w: %#x", ErrClientFlags, f)
	}
	if f&ClientFixedNewstyle == 0 {
		return false, fmt.Errorf("%w: client does not speak fixed newstyle", ErrClientFlags)
	}
	return f&ClientNoZeroes != 0, nil
}

// Option is a client option request.
type Option struct {
	ID   uint32
	Data []byte
}

// ReadOption reads one option. If its data is longer than maxData it
// returns the option header with ErrOptionTooLong without reading the data.
func ReadOption(r io.Reader, maxData uint32) (Option, uint32, error) {
	var h [OptionHeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Option{}, 0, err
	}
	if m := be.Uint64(h[0:]); m != MagicOption {
		return Option{}, 0, fmt.Errorf("%w: option magic %#x", ErrBadMagic, m)
	}
	o := Option{ID: be.Uint32(h[8:])}
	n := be.Uint32(h[12:])
	if n > maxData {
		return o, n, fmt.Errorf("%w: option %d carries %d bytes (limit %d)", ErrOptionTooLong, o.ID, n, maxData)
	}
	o.Data = make([]byte, n)
	if _, err := io.ReadFull(r, o.Data); err != nil {
		return o, n, err
	}
	return o, n, nil
}

// AppendOptionReply appends an option reply.
func AppendOptionReply(dst []byte, opt, typ uint32, data []byte) []byte {
	dst = be.AppendUint64(dst, MagicReply)
	dst = be.AppendUint32(dst, opt)
	dst = be.AppendUint32(dst, typ)
	dst = be.AppendUint32(dst, uint32(len(data)))
	return append(dst, data...)
}

// InfoRequest is the data of an INFO or GO option.
type InfoRequest struct {
	Name  string
	Infos []uint16
}

// ParseInfoRequest decodes INFO/GO data: a 32-bit name length, the name, a
// 16-bit count and that many 16-bit info types, and nothing after.
func ParseInfoRequest(d []byte) (InfoRequest, error) {
	var r InfoRequest
	if len(d) < 4 {
		return r, fmt.Errorf("%w: %d bytes, need at least 6", ErrMalformed, len(d))
	}
	n := be.Uint32(d)
	if uint64(n) > uint64(len(d)-4) || len(d)-4-int(n) < 2 {
		return r, fmt.Errorf("%w: name length %d in %d bytes", ErrMalformed, n, len(d))
	}
	name := d[4 : 4+n]
	rest := d[4+n:]
	count := int(be.Uint16(rest))
	rest = rest[2:]
	if len(rest) != 2*count {
		return r, fmt.Errorf("%w: %d info requests need %d bytes, have %d", ErrMalformed, count, 2*count, len(rest))
	}
	if err := checkName(name); err != nil {
		return r, err
	}
	r.Name = string(name)
	for i := 0; i < count; i++ {
		r.Infos = append(r.Infos, be.Uint16(rest[2*i:]))
	}
	return r, nil
}

// ParseExportName decodes EXPORT_NAME data (the bare name).
func ParseExportName(d []byte) (string, error) {
	if err := checkName(d); err != nil {
		return "", err
	}
	return string(d), nil
}

func checkName(b []byte) error {
	if len(b) > MaxNameLength {
		return fmt.Errorf("%w: name of %d bytes (limit %d)", ErrMalformed, len(b), MaxNameLength)
	}
	if !utf8.Valid(b) {
		return fmt.Errorf("%w: name is not UTF-8", ErrMalformed)
	}
	for _, c := range b {
		if c == 0 {
			return fmt.Errorf("%w: name contains NUL", ErrMalformed)
		}
	}
	return nil
}

// InfoExportData is the payload of an INFO_EXPORT reply.
func InfoExportData(size uint64, flags uint16) []byte {
	b := make([]byte, 12)
	be.PutUint16(b[0:], InfoExport)
	be.PutUint64(b[2:], size)
	be.PutUint16(b[10:], flags)
	return b
}

// InfoStringData is the payload of an INFO_NAME or INFO_DESCRIPTION reply.
func InfoStringData(typ uint16, s string) []byte {
	b := make([]byte, 2, 2+len(s))
	be.PutUint16(b, typ)
	return append(b, s...)
}

// InfoBlockSizeData is the payload of an INFO_BLOCK_SIZE reply.
func InfoBlockSizeData(minimum, preferred, maximum uint32) []byte {
	b := make([]byte, 14)
	be.PutUint16(b[0:], InfoBlockSize)
	be.PutUint32(b[2:], minimum)
	be.PutUint32(b[6:], preferred)
	be.PutUint32(b[10:], maximum)
	return b
}

// ServerData is the payload of a LIST reply for one export.
func ServerData(name string) []byte {
	b := make([]byte, 4, 4+len(name))
	be.PutUint32(b, uint32(len(name)))
	return append(b, name...)
}

// ExportNameReply is the reply to EXPORT_NAME: size, flags and, unless the
// client negotiated NO_ZEROES, 124 bytes of zeroes.
func ExportNameReply(size uint64, flags uint16, noZeroes bool) []byte {
	n := 10
	if !noZeroes {
		n += 124
	}
	b := make([]byte, n)
	be.PutUint64(b[0:], size)
	be.PutUint16(b[8:], flags)
	return b
}
