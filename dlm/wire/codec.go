package wire

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/replicad/replicad/dlm/locktable"
)

type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)            { e.b = append(e.b, v) }
func (e *encoder) uv(v uint64)           { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) bytes(v []byte)        { e.uv(uint64(len(v))); e.b = append(e.b, v...) }
func (e *encoder) str(v string)          { e.uv(uint64(len(v))); e.b = append(e.b, v...) }
func (e *encoder) mode(m locktable.Mode) { e.u8(uint8(m)) }
func (e *encoder) flag(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

// Marshal encodes an envelope.
func Marshal(env *Envelope) []byte {
	e := &encoder{b: make([]byte, 0, 64+len(env.Msgs)*48)}
	e.u8(Version)
	e.str(env.Lockspace)
	e.uv(uint64(env.From))
	e.uv(env.FromInc)
	e.uv(uint64(env.To))
	e.uv(env.ToInc)
	e.uv(env.Seq)
	e.uv(env.Ack)
	e.uv(uint64(len(env.Msgs)))
	for i := range env.Msgs {
		e.msg(&env.Msgs[i])
	}
	return e.b
}

func (e *encoder) msg(m *Msg) {
	e.u8(uint8(m.Type))
	e.uv(m.Gen)
	e.uv(m.ID)
	e.uv(uint64(m.LkID))
	e.str(m.Name)
	e.mode(m.Mode)
	e.mode(m.RqMode)
	e.uv(uint64(m.Flags))
	e.u8(uint8(m.SB))
	e.u8(uint8(m.Result))
	e.uv(uint64(m.Node))
	e.bytes(m.LVB)
	e.uv(uint64(m.LVBSeq))
	e.u8(m.Bits)
	e.uv(uint64(len(m.View)))
	for _, v := range m.View {
		e.uv(uint64(v.Node))
		e.uv(v.Inc)
	}
	e.uv(uint64(len(m.Fence)))
	for _, f := range m.Fence {
		e.uv(uint64(f.Node))
		e.uv(f.Failed)
		e.uv(f.Fenced)
	}
	e.uv(uint64(len(m.Dir)))
	for _, d := range m.Dir {
		e.str(d.Name)
		e.flag(d.Owner)
		e.uv(uint64(d.Believed))
	}
	e.uv(uint64(len(m.Masters)))
	for _, d := range m.Masters {
		e.str(d.Name)
		e.uv(uint64(d.Master))
		e.flag(d.Remaster)
	}
	e.uv(uint64(len(m.Locks)))
	for _, l := range m.Locks {
		e.str(l.Name)
		e.uv(uint64(l.LkID))
		e.mode(l.GrMode)
		e.mode(l.RqMode)
		e.u8(uint8(l.Status))
		e.uv(uint64(l.Flags))
		e.u8(uint8(l.SB))
		e.bytes(l.LVB)
		e.uv(uint64(l.LVBSeq))
		e.mode(l.HighBast)
		e.flag(l.WantBast)
	}
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (d *decoder) u8() uint8 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uv() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u32(what string) uint32 {
	v := d.uv()
	if v > math.MaxUint32 {
		d.fail("%s %d out of range", what, v)
		return 0
	}
	return uint32(v)
}

func (d *decoder) raw(max int, what string) []byte {
	n := d.uv()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(d.b)) {
		d.fail("%s of %d bytes", what, n)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str(max int, what string) string { return string(d.raw(max, what)) }

func (d *decoder) lvb() []byte {
	v := d.raw(MaxLVBLen, "LVB")
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

func (d *decoder) mode(what string) locktable.Mode {
	m := locktable.Mode(int8(d.u8()))
	if d.err == nil && m != locktable.IV && !m.Valid() {
		d.fail("%s %d", what, int8(m))
	}
	return m
}

func (d *decoder) flag() bool {
	v := d.u8()
	if v > 1 {
		d.fail("boolean %d", v)
	}
	return v == 1
}

// count reads a list length; every entry takes at least min bytes, so a
// count the remaining input cannot hold is refused before allocating.
func (d *decoder) count(min int, what string) int {
	n := d.uv()
	if d.err != nil {
		return 0
	}
	if n > MaxListEntries || n*uint64(min) > uint64(len(d.b)) {
		d.fail("%d %s", n, what)
		return 0
	}
	return int(n)
}

// Unmarshal decodes an envelope.
func Unmarshal(b []byte) (*Envelope, error) {
	d := &decoder{b: b}
	v := d.u8()
	if d.err == nil && v != Version {
		return nil, fmt.Errorf("%w: version %d (this node speaks %d)", ErrVersion, v, Version)
	}
	env := &Envelope{}
	env.Lockspace = d.str(MaxLockspace, "lockspace name")
	env.From = locktable.NodeID(d.u32("node"))
	env.FromInc = d.uv()
	env.To = locktable.NodeID(d.u32("node"))
	env.ToInc = d.uv()
	env.Seq = d.uv()
	env.Ack = d.uv()
	n := d.count(minMsgLen, "messages")
	if n > 0 {
		env.Msgs = make([]Msg, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		d.msg(&env.Msgs[i])
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return env, nil
}

// minMsgLen is the encoded size of an all-zero message.
const minMsgLen = 19

func (d *decoder) msg(m *Msg) {
	m.Type = Type(d.u8())
	if d.err == nil && typeNames[m.Type] == "" {
		d.fail("message type %d", m.Type)
		return
	}
	m.Gen = d.uv()
	m.ID = d.uv()
	m.LkID = d.u32("lock id")
	m.Name = d.str(MaxNameLen, "resource name")
	m.Mode = d.mode("mode")
	m.RqMode = d.mode("requested mode")
	m.Flags = locktable.Flags(d.u32("flags"))
	m.SB = locktable.SBFlags(d.u8())
	m.Result = locktable.Result(d.u8())
	m.Node = locktable.NodeID(d.u32("node"))
	m.LVB = d.lvb()
	m.LVBSeq = d.u32("LVB sequence")
	m.Bits = d.u8()
	if d.err == nil && m.Bits&^bitsMask != 0 {
		d.fail("bits %#x", m.Bits)
	}
	if n := d.count(2, "view members"); n > 0 {
		m.View = make([]Member, n)
		for i := range m.View {
			m.View[i] = Member{Node: locktable.NodeID(d.u32("node")), Inc: d.uv()}
		}
	}
	if n := d.count(3, "fence entries"); n > 0 {
		m.Fence = make([]FenceState, n)
		for i := range m.Fence {
			m.Fence[i] = FenceState{Node: locktable.NodeID(d.u32("node")), Failed: d.uv(), Fenced: d.uv()}
		}
	}
	if n := d.count(3, "directory entries"); n > 0 {
		m.Dir = make([]DirEntry, n)
		for i := range m.Dir {
			m.Dir[i] = DirEntry{Name: d.str(MaxNameLen, "resource name"), Owner: d.flag(), Believed: locktable.NodeID(d.u32("node"))}
		}
	}
	if n := d.count(3, "master entries"); n > 0 {
		m.Masters = make([]MasterEntry, n)
		for i := range m.Masters {
			m.Masters[i] = MasterEntry{Name: d.str(MaxNameLen, "resource name"), Master: locktable.NodeID(d.u32("node")), Remaster: d.flag()}
		}
	}
	if n := d.count(11, "lock reports"); n > 0 {
		m.Locks = make([]LockReport, n)
		for i := range m.Locks {
			l := &m.Locks[i]
			l.Name = d.str(MaxNameLen, "resource name")
			l.LkID = d.u32("lock id")
			l.GrMode = d.mode("granted mode")
			l.RqMode = d.mode("requested mode")
			l.Status = locktable.Status(d.u8())
			if d.err == nil && l.Status > locktable.StatusConverting {
				d.fail("lock status %d", l.Status)
			}
			l.Flags = locktable.Flags(d.u32("flags"))
			l.SB = locktable.SBFlags(d.u8())
			l.LVB = d.lvb()
			l.LVBSeq = d.u32("LVB sequence")
			l.HighBast = d.mode("bast mode")
			l.WantBast = d.flag()
		}
	}
}

// WriteFrame writes one length-prefixed frame.
func WriteFrame(w io.Writer, body []byte) error {
	if len(body) > MaxFrame {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(body))
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// ReadFrame reads one length-prefixed frame of at most max bytes (MaxFrame
// if max is 0).
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	if max <= 0 || max > MaxFrame {
		max = MaxFrame
	}
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
	return body, nil
}
