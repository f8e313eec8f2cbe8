package journal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Magic starts every frame.
const Magic = "RFJ1"

// HeaderSize is the size of a frame header.
const HeaderSize = 12

// MaxPayload bounds one record.
const MaxPayload = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendFrame appends payload, framed, to dst.
func AppendFrame(dst, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return dst, fmt.Errorf("journal: record of %d bytes exceeds the %d-byte limit", len(payload), MaxPayload)
	}
	var h [HeaderSize]byte
	copy(h[:4], Magic)
	binary.BigEndian.PutUint32(h[4:8], uint32(len(payload)))
	binary.BigEndian.PutUint32(h[8:12], crc32.Checksum(payload, castagnoli))
	dst = append(dst, h[:]...)
	return append(dst, payload...), nil
}

// Record is one intact frame's payload and where its frame starts.
type Record struct {
	Offset  int64
	Payload []byte
}

// Damage is a byte range Parse skipped.
type Damage struct {
	Offset, Length int64
	Why            string
}

// Result is what Parse found.
type Result struct {
	Records []Record
	// End is the offset just past the last intact frame.
	End int64
	// Damaged lists the skipped ranges in order.
	Damaged []Damage
	// TornTail is set when the last damaged range reaches the end of the
	// data: truncate to End before appending.
	TornTail bool
}

// frameAt reports whether an intact frame starts at pos, its total size,
// and if not, why.
func frameAt(data []byte, pos int) (int, string) {
	rest := data[pos:]
	if len(rest) < HeaderSize {
		return 0, fmt.Sprintf("%d bytes, shorter than a frame header", len(rest))
	}
	if string(rest[:4]) != Magic {
		return 0, "no frame magic"
	}
	n := binary.BigEndian.Uint32(rest[4:8])
	if n > MaxPayload {
		return 0, fmt.Sprintf("frame length %d exceeds the limit", n)
	}
	if uint64(len(rest)-HeaderSize) < uint64(n) {
		return 0, fmt.Sprintf("frame of %d bytes cut short at %d", n, len(rest)-HeaderSize)
	}
	payload := rest[HeaderSize : HeaderSize+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(rest[8:12]) {
		return 0, "checksum mismatch"
	}
	return HeaderSize + int(n), ""
}

// Parse reads every intact frame of data. Payloads alias data.
func Parse(data []byte) Result {
	var r Result
	pos := 0
	for pos < len(data) {
		if n, _ := frameAt(data, pos); n > 0 {
			r.Records = append(r.Records, Record{Offset: int64(pos), Payload: data[pos+HeaderSize : pos+n]})
			pos += n
			r.End = int64(pos)
			continue
		}
		_, why := frameAt(data, pos)
		next := nextFrame(data, pos+1)
		if next < 0 {
			r.Damaged = append(r.Damaged, Damage{Offset: int64(pos), Length: int64(len(data) - pos), Why: why})
			r.TornTail = true
			break
		}
		r.Damaged = append(r.Damaged, Damage{Offset: int64(pos), Length: int64(next - pos), Why: why})
		pos = next
	}
	return r
}

// nextFrame finds the first intact frame at or after from, or -1.
func nextFrame(data []byte, from int) int {
	for from < len(data) {
		i := bytes.Index(data[from:], []byte(Magic))
		if i < 0 {
			return -1
		}
		if n, _ := frameAt(data, from+i); n > 0 {
			return from + i
		}
		from += i + 1
	}
	return -1
}
