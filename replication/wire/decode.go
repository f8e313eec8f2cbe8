package wire

import (
	"fmt"
	"unicode/utf8"
)

// reader consumes a payload, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated %s", ErrBadFrame, what)
	}
}

// take consumes n bytes (nil, and a recorded error, if fewer are left).
func (r *reader) take(n int, what string) []byte {
	if len(r.b) < n {
		r.fail(what)
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

func (r *reader) u8(what string) uint8 {
	if b := r.take(1, what); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16(what string) uint16 {
	if b := r.take(2, what); b != nil {
		return be.Uint16(b)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if b := r.take(4, what); b != nil {
		return be.Uint32(b)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if b := r.take(8, what); b != nil {
		return be.Uint64(b)
	}
	return 0
}

func (r *reader) bool(what string) bool {
	v := r.u8(what)
	if v > 1 && r.err == nil {
		r.err = fmt.Errorf("%w: %s is %d, want 0 or 1", ErrBadFrame, what, v)
	}
	return v == 1
}

func (r *reader) str(what string) string {
	n := int(r.u16(what + " length"))
	if r.err != nil {
		return ""
	}
	if n > maxString {
		r.fail(what)
		return ""
	}
	s := r.take(n, what)
	if r.err == nil && !utf8.Valid(s) {
		r.err = fmt.Errorf("%w: %s is not UTF-8", ErrBadFrame, what)
	}
	return string(s)
}

// history reads a count-prefixed list of UUIDs.
func (r *reader) history() ([]uint64, error) {
	n := int(r.u8("history count"))
	if n > MaxHistory {
		return nil, fmt.Errorf("%w: %d history UUIDs", ErrBadFrame, n)
	}
	var h []uint64
	for i := 0; i < n && r.err == nil; i++ {
		h = append(h, r.u64("history"))
	}
	return h, nil
}

// done checks that the payload was consumed exactly.
func (r *reader) done(t Type) error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes in %v", ErrBadFrame, len(r.b), t)
	}
	return nil
}

// Decode parses a frame's payload into its message. Data slices alias the
// payload. Data messages have their crc32c checked.
func Decode(f Frame) (Message, error) {
	r := &reader{b: f.Payload}
	var m Message
	switch f.Type {
	case TypeHello:
		h := &Hello{Version: r.u16("version"), Volume: r.str("volume"), NodeID: r.u32("node id")}
		h.DataSize = int64(r.u64("data size"))
		h.Granularity = r.u32("granularity")
		h.Protocol, h.Role, h.Disk = r.u8("protocol"), r.u8("role"), r.u8("disk")
		h.Flags = r.u32("flags")
		h.Current, h.Bitmap = r.u64("current"), r.u64("bitmap")
		h.ChangedBits = int64(r.u64("changed bits"))
		var err error
		if h.History, err = r.history(); err != nil {
			return nil, err
		}
		if h.Version >= 2 {
			// (version 1 ends here; the engine refuses it by its version)
			h.SyncToward = r.u64("sync toward")
		}
		if r.err == nil && (h.DataSize < 0 || h.ChangedBits < 0) {
			return nil, fmt.Errorf("%w: negative size or bit count", ErrBadFrame)
		}
		m = h
	case TypeState:
		m = &State{Role: r.u8("role"), Disk: r.u8("disk"), Current: r.u64("current"), InSync: r.u32("in-sync set"), Pending: r.bool("pending"), SyncToward: r.u64("sync-toward"), Uncommitted: r.bool("uncommitted")}
	case TypeWrite:
		w := &Write{Seq: r.u64("seq"), Offset: r.u64("offset"), FUA: r.bool("fua"), CRC: r.u32("crc"), Applied: r.u64("applied")}
		if r.err != nil {
			return nil, r.err
		}
		w.Data, r.b = r.b, nil
		if Checksum(w.Data) != w.CRC {
			return nil, fmt.Errorf("%w: write seq %d at %d", ErrChecksum, w.Seq, w.Offset)
		}
		m = w
	case TypeZero:
		z := &Zero{Seq: r.u64("seq"), Offset: r.u64("offset"), Length: r.u64("length")}
		f := r.u8("flags")
		if f&^3 != 0 {
			return nil, fmt.Errorf("%w: zero flags %#x", ErrBadFrame, f)
		}
		z.Deallocate, z.FUA = f&1 != 0, f&2 != 0
		z.Applied = r.u64("applied")
		m = z
	case TypeRecvAck:
		m = &RecvAck{Seq: r.u64("seq")}
	case TypeWriteAck:
		m = &WriteAck{Seq: r.u64("seq"), Err: r.str("error")}
	case TypeFlush:
		m = &Flush{Epoch: r.u64("epoch")}
	case TypeFlushAck:
		m = &FlushAck{Epoch: r.u64("epoch"), Err: r.str("error")}
	case TypeBitmap:
		bm := &Bitmap{StartWord: r.u64("start word"), Last: r.bool("last")}
		if r.err == nil && len(r.b)%8 != 0 {
			return nil, fmt.Errorf("%w: bitmap of %d bytes", ErrBadFrame, len(r.b))
		}
		for r.err == nil && len(r.b) > 0 {
			bm.Words = append(bm.Words, r.u64("word"))
		}
		m = bm
	case TypeResyncData:
		d := &ResyncData{Offset: r.u64("offset"), CRC: r.u32("crc"), Lagging: r.u32("lagging set")}
		if r.err != nil {
			return nil, r.err
		}
		d.Data, r.b = r.b, nil
		if Checksum(d.Data) != d.CRC {
			return nil, fmt.Errorf("%w: resync data at %d", ErrChecksum, d.Offset)
		}
		m = d
	case TypeResyncAck:
		m = &ResyncAck{Offset: r.u64("offset"), Length: r.u32("length"), Err: r.str("error")}
	case TypeSyncDone:
		d := &SyncDone{Current: r.u64("current")}
		var err error
		if d.History, err = r.history(); err != nil {
			return nil, err
		}
		m = d
	case TypeOutOfSync:
		o := &OutOfSync{Node: r.u32("node")}
		n := int(r.u16("range count"))
		if n > MaxRanges {
			return nil, fmt.Errorf("%w: %d out-of-sync ranges", ErrBadFrame, n)
		}
		for i := 0; i < n && r.err == nil; i++ {
			rg := Range{Offset: r.u64("offset"), Length: r.u64("length")}
			if r.err == nil && rg.Offset+rg.Length < rg.Offset {
				return nil, fmt.Errorf("%w: out-of-sync range [%d, +%d) wraps", ErrBadFrame, rg.Offset, rg.Length)
			}
			o.Ranges = append(o.Ranges, rg)
		}
		m = o
	case TypeConfirmed:
		m = &Confirmed{Seq: r.u64("seq")}
	case TypeDigest:
		d := &Digest{Kind: r.u8("kind"), Offset: r.u64("offset"), Length: r.u32("length")}
		if r.err == nil && (len(r.b)%SumSize != 0 || d.Kind != DigestResync && d.Kind != DigestVerify) {
			return nil, fmt.Errorf("%w: digest kind %d with %d bytes of sums", ErrBadFrame, d.Kind, len(r.b))
		}
		d.Sums, r.b = r.b, nil
		m = d
	case TypeDigestReply:
		d := &DigestReply{Kind: r.u8("kind"), Offset: r.u64("offset"), Length: r.u32("length")}
		if r.err == nil && len(r.b)%8 != 0 {
			return nil, fmt.Errorf("%w: digest reply with %d bytes of bits", ErrBadFrame, len(r.b))
		}
		for r.err == nil && len(r.b) > 0 {
			d.Unequal = append(d.Unequal, r.u64("bits"))
		}
		m = d
	case TypeVerifyStart:
		m = &VerifyStart{}
	case TypeVerifyDone:
		m = &VerifyDone{Checked: r.u64("checked"), Differences: r.u64("differences")}
	case TypePing:
		m = &Ping{}
	case TypePingAck:
		m = &PingAck{}
	case TypeGoodbye:
		m = &Goodbye{Reason: r.str("reason")}
	default:
		return nil, fmt.Errorf("%w: unknown message type %d", ErrBadFrame, uint8(f.Type))
	}
	if err := r.done(f.Type); err != nil {
		return nil, err
	}
	return m, nil
}
