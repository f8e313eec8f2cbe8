package localproto

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/replicad/replicad/dlm/locktable"
)

// Version is the protocol version.
const Version = 1

// Frame limits: requests are small; replies may carry a lockspace dump.
const (
	MaxRequest = 64 << 10
	MaxReply   = 64 << 20
	maxErr     = 4 << 10
)

// Type is a message type.
type Type uint8

// Message types.
const (
	TypeHello   Type = 1 // Name: the client's description
	TypeJoin    Type = 2 // Lockspace, LVBLen
	TypeLeave   Type = 3 // Lockspace, Force
	TypeList    Type = 4 // reply Data: JSON []engine.Status
	TypeDump    Type = 5 // Lockspace; reply Data: JSON engine.Dump
	TypeLock    Type = 6 // Lockspace, Name, Mode, Flags, LVB, BitWantBast; reply LkID
	TypeConvert Type = 7 // Lockspace, LkID, Mode, Flags, LVB
	TypeUnlock  Type = 8 // Lockspace, LkID, Flags, LVB
	TypeCancel  Type = 9 // Lockspace, LkID

	TypeReply      Type = 64 // Req, Code, Err, LkID, Data
	TypeCompletion Type = 65 // Lockspace, LkID, Result, Mode, SB, LVB, LVBSeq, BitFinal
	TypeBlocking   Type = 66 // Lockspace, LkID, Mode
)

func (t Type) valid() bool {
	return (t >= TypeHello && t <= TypeCancel) || (t >= TypeReply && t <= TypeBlocking)
}

// Bits.
const (
	BitWantBast uint8 = 1 << 0
	BitFinal    uint8 = 1 << 1
	bitsMask          = BitWantBast | BitFinal
)

// Code classifies a reply's error.
type Code uint8

// Reply codes.
const (
	CodeOK          Code = 0
	CodeInvalid     Code = 1
	CodeBusy        Code = 2
	CodeUnknownLock Code = 3
	CodeNotJoined   Code = 4
	CodeNoOrphan    Code = 5
	CodeOrphanMode  Code = 6
	CodeLeft        Code = 7
	CodeJoined      Code = 8
	CodeInternal    Code = 9
	maxCode              = CodeInternal
)

// Msg is one message; which fields matter depends on Type.
type Msg struct {
	Type      Type
	Req       uint64
	Lockspace string
	Name      string
	LkID      uint32
	Mode      locktable.Mode
	Flags     locktable.Flags
	LVB       []byte
	LVBLen    uint8
	Force     uint8
	Result    locktable.Result
	SB        locktable.SBFlags
	LVBSeq    uint32
	Bits      uint8
	Code      Code
	Err       string
	Data      []byte
}

// Encode returns m's body.
func Encode(m *Msg) []byte {
	b := make([]byte, 0, 48+len(m.Name)+len(m.LVB)+len(m.Err)+len(m.Data))
	uv := func(v uint64) { b = binary.AppendUvarint(b, v) }
	bs := func(v []byte) { uv(uint64(len(v))); b = append(b, v...) }
	b = append(b, Version, byte(m.Type))
	uv(m.Req)
	bs([]byte(m.Lockspace))
	bs([]byte(m.Name))
	uv(uint64(m.LkID))
	b = append(b, byte(m.Mode))
	uv(uint64(m.Flags))
	bs(m.LVB)
	b = append(b, m.LVBLen, m.Force, byte(m.Result), byte(m.SB))
	uv(uint64(m.LVBSeq))
	b = append(b, m.Bits, byte(m.Code))
	bs([]byte(m.Err))
	bs(m.Data)
	return b
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(f string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+f, append([]any{ErrMalformed}, a...)...)
	}
}

func (d *dec) u8() uint8 {
	if d.err != nil || len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uv(max uint64, what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint in %s", what)
		return 0
	}
	d.b = d.b[n:]
	if v > max {
		d.fail("%s %d out of range", what, v)
		return 0
	}
	return v
}

func (d *dec) bytes(max int, what string) []byte {
	n := d.uv(uint64(max), what+" length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("truncated %s", what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	if n == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

// Decode parses a body.
func Decode(b []byte) (*Msg, error) {
	d := &dec{b: b}
	if v := d.u8(); d.err == nil && v != Version {
		return nil, fmt.Errorf("%w: %d (this side speaks %d)", ErrVersion, v, Version)
	}
	m := &Msg{}
	m.Type = Type(d.u8())
	if d.err == nil && !m.Type.valid() {
		d.fail("message type %d", m.Type)
	}
	m.Req = d.uv(math.MaxUint64, "request")
	m.Lockspace = string(d.bytes(64, "lockspace"))
	m.Name = string(d.bytes(locktable.MaxNameLen, "name"))
	m.LkID = uint32(d.uv(math.MaxUint32, "lock id"))
	m.Mode = locktable.Mode(int8(d.u8()))
	if d.err == nil && m.Mode != locktable.IV && !m.Mode.Valid() {
		d.fail("mode %d", int8(m.Mode))
	}
	m.Flags = locktable.Flags(d.uv(math.MaxUint32, "flags"))
	m.LVB = d.bytes(64, "LVB")
	m.LVBLen = d.u8()
	m.Force = d.u8()
	if d.err == nil && m.Force > 3 {
		d.fail("force %d", m.Force)
	}
	m.Result = locktable.Result(d.u8())
	m.SB = locktable.SBFlags(d.u8())
	m.LVBSeq = uint32(d.uv(math.MaxUint32, "LVB sequence"))
	m.Bits = d.u8()
	if d.err == nil && m.Bits&^bitsMask != 0 {
		d.fail("bits %#x", m.Bits)
	}
	m.Code = Code(d.u8())
	if d.err == nil && m.Code > maxCode {
		d.fail("code %d", m.Code)
	}
	m.Err = string(d.bytes(maxErr, "error text"))
	m.Data = d.bytes(MaxReply, "data")
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

// WriteFrame writes one message as a frame.
func WriteFrame(w io.Writer, m *Msg) error {
	body := Encode(m)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	_, err := w.Write(append(hdr[:], body...))
	return err
}

// ReadFrame reads and decodes one frame of at most max bytes.
func ReadFrame(r io.Reader, max int) (*Msg, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, n, max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return Decode(body)
}
