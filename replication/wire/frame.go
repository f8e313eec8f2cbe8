package wire

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Frame header layout.
const (
	HeaderSize = 8
	magic0     = 'R'
	magic1     = 'P'
	// MaxPayload bounds a frame's payload: a 32 MiB write plus its header,
	// or a bitmap chunk.
	MaxPayload = 32<<20 + 4096
)

// Frame flags.
const (
	FlagS2   uint8 = 1 << 0
	FlagZstd uint8 = 1 << 1
	knownFlg       = FlagS2 | FlagZstd
)

var be = binary.BigEndian

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is the crc32c that guards data payloads.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Frame is a raw frame as read from the wire.
type Frame struct {
	Type    Type
	Flags   uint8
	Payload []byte
}

// PutHeader encodes a frame header.
func PutHeader(b []byte, t Type, flags uint8, n int) {
	b[0], b[1], b[2], b[3] = magic0, magic1, byte(t), flags
	be.PutUint32(b[4:], uint32(n))
}

// ParseHeader decodes and checks a frame header.
func ParseHeader(b []byte) (t Type, flags uint8, n uint32, err error) {
	if b[0] != magic0 || b[1] != magic1 {
		return 0, 0, 0, fmt.Errorf("%w: magic %#02x%02x", ErrBadFrame, b[0], b[1])
	}
	t, flags, n = Type(b[2]), b[3], be.Uint32(b[4:])
	if flags&^knownFlg != 0 || flags == FlagS2|FlagZstd {
		return 0, 0, 0, fmt.Errorf("%w: unknown flags %#x", ErrBadFrame, flags)
	}
	if n > MaxPayload {
		return 0, 0, 0, fmt.Errorf("%w: %d-byte payload exceeds %d", ErrBadFrame, n, MaxPayload)
	}
	return t, flags, n, nil
}

// firstRead is the most ReadFrame allocates for a payload before its bytes
// arrive: a header alone, which costs the sender 8 bytes, must not cost
// the receiver MaxPayload.
const firstRead = 2 << 20

// readGrowing reads n bytes into a new slice that grows (doubling) as
// they arrive.
func readGrowing(r io.Reader, n int) ([]byte, error) {
	p := make([]byte, 0, min(n, firstRead))
	for len(p) < n {
		if len(p) == cap(p) {
			p = slices.Grow(p, min(n-len(p), cap(p)))
		}
		k, err := io.ReadFull(r, p[len(p):min(cap(p), n)])
		p = p[:len(p)+k]
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// ReadFrame reads one frame; buf, if big enough, holds the payload (the
// returned payload aliases it). Compressed payloads are decompressed into a
// new slice.
func ReadFrame(r io.Reader, buf []byte) (Frame, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	t, flags, n, err := ParseHeader(h[:])
	if err != nil {
		return Frame{}, err
	}
	var p []byte
	if uint32(cap(buf)) >= n {
		p = buf[:n]
		_, err = io.ReadFull(r, p)
	} else {
		p, err = readGrowing(r, int(n))
	}
	if err != nil {
		return Frame{}, err
	}
	switch {
	case flags&FlagS2 != 0:
		dn, err := s2.DecodedLen(p)
		if err != nil || dn > MaxPayload {
			return Frame{}, fmt.Errorf("%w: bad compressed payload (%v)", ErrBadFrame, err)
		}
		d, err := s2.Decode(nil, p)
		if err != nil {
			return Frame{}, fmt.Errorf("%w: %v", ErrBadFrame, err)
		}
		p = d
	case flags&FlagZstd != 0:
		d, err := zstdDecoder().DecodeAll(p, nil)
		if err != nil {
			return Frame{}, fmt.Errorf("%w: bad zstd payload: %v", ErrBadFrame, err)
		}
		p = d
	}
	return Frame{Type: t, Flags: flags, Payload: p}, nil
}

// Compression names a frame compression.
type Compression uint8

// Compressions: s2 for fast links (it gives up on incompressible data
// cheaply), zstd (fastest level) for slow ones.
const (
	NoCompression Compression = iota
	S2
	Zstd
)

// ParseCompression reads "none", "s2" or "zstd".
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "", "none":
		return NoCompression, nil
	case "s2":
		return S2, nil
	case "zstd":
		return Zstd, nil
	}
	return 0, fmt.Errorf("compression %q: want none, s2 or zstd", s)
}

// Compress returns p compressed and the frame flag to send with it, or
// ok false when compression would not make it smaller.
func Compress(c Compression, p []byte) (out []byte, flag uint8, ok bool) {
	switch c {
	case S2:
		out, flag = s2.Encode(nil, p), FlagS2
	case Zstd:
		out, flag = zstdEncoder().EncodeAll(p, nil), FlagZstd
	default:
		return nil, 0, false
	}
	if len(out) >= len(p) {
		return nil, 0, false
	}
	return out, flag, true
}

var (
	zstdOnce sync.Once
	zenc     *zstd.Encoder
	zdec     *zstd.Decoder
)

func zstdInit() {
	zstdOnce.Do(func() {
		zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		zdec, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(MaxPayload), zstd.WithDecoderConcurrency(2))
	})
}

func zstdEncoder() *zstd.Encoder { zstdInit(); return zenc }
func zstdDecoder() *zstd.Decoder { zstdInit(); return zdec }
