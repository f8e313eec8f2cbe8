package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// compressedFrame is m as the link sends it with compression c
// (replication/link.go writeFrame): the whole payload compressed, the
// compression's flag in the header. ok is false when compression would not
// make the payload smaller (the link then sends it plain).
func compressedFrame(c Compression, m Message) (frame []byte, ok bool) {
	out, flag, ok := Compress(c, m.Append(nil))
	if !ok {
		return nil, false
	}
	return rawFrame(m.Type(), flag, out), true
}

// rawFrame is a frame with a payload that need not be a valid one.
func rawFrame(t Type, flags uint8, payload []byte) []byte {
	f := make([]byte, HeaderSize, HeaderSize+len(payload))
	PutHeader(f, t, flags, len(payload))
	return append(f, payload...)
}

// compressible are messages of several types whose payloads compress, so
// that both compressions give a frame for each.
func compressible() []Message {
	data := bytes.Repeat([]byte("replicad "), 1000)
	sums := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 64)[:64*SumSize]
	var ranges []Range
	for i := range 200 {
		ranges = append(ranges, Range{Offset: uint64(i) << 20, Length: 4096})
	}
	return []Message{
		&Write{Seq: 5, Offset: 4096, FUA: true, CRC: Checksum(data), Applied: 3, Data: data},
		&ResyncData{Offset: 1 << 20, CRC: Checksum(data), Lagging: 0b110, Data: data},
		&Bitmap{StartWord: 64, Words: make([]uint64, 512)},
		&Bitmap{Last: true, Words: append(make([]uint64, 300), ^uint64(0), 1)},
		&Hello{Version: Version, Volume: strings.Repeat("v", 2000), NodeID: 1, DataSize: 1 << 30, Granularity: 4096, Protocol: 'C',
			History: []uint64{1, 2, 3}, SyncToward: 9},
		&OutOfSync{Node: 2, Ranges: ranges},
		&Digest{Kind: DigestVerify, Offset: 0, Length: 64 * 4096, Sums: sums},
		&DigestReply{Kind: DigestResync, Offset: 0, Length: 4096 * 64 * 300, Unequal: make([]uint64, 300)},
		&Goodbye{Reason: strings.Repeat("split brain detected; ", 100)},
		&WriteAck{Seq: 11, Err: strings.Repeat("EIO ", 500)},
	}
}

// compressedSeeds are the seeds FuzzDecode adds so that the fuzzer starts
// inside both decompression paths: every compressible message under s2 and
// zstd, and a compressed frame followed by a plain one in one stream.
func compressedSeeds() [][]byte {
	var seeds [][]byte
	for _, c := range []Compression{S2, Zstd} {
		for _, m := range compressible() {
			if f, ok := compressedFrame(c, m); ok {
				seeds = append(seeds, f)
			}
		}
		f, _ := compressedFrame(c, &Bitmap{Words: make([]uint64, 256)})
		seeds = append(seeds, append(f, AppendFrame(nil, &Ping{})...))
	}
	return seeds
}

// TestCompressedFramesOfEveryKind: each compressible message, compressed as
// the link does it, reads back as the same message under both compressions
// (and the seeds FuzzDecode starts from are what they claim to be).
func TestCompressedFramesOfEveryKind(t *testing.T) {
	for _, c := range []Compression{S2, Zstd} {
		for _, want := range compressible() {
			frame, ok := compressedFrame(c, want)
			if !ok {
				t.Fatalf("compression %d: %v did not compress", c, want.Type())
			}
			if frame[3] == 0 {
				t.Fatalf("compression %d: %v frame has no compression flag", c, want.Type())
			}
			f, err := ReadFrame(bytes.NewReader(frame), nil)
			if err != nil {
				t.Fatalf("compression %d: %v: %v", c, want.Type(), err)
			}
			got, err := Decode(f)
			if err != nil {
				t.Fatalf("compression %d: %v: %v", c, want.Type(), err)
			}
			if !bytes.Equal(got.Append(nil), want.Append(nil)) {
				t.Fatalf("compression %d: %v does not round-trip", c, want.Type())
			}
		}
	}
	if n := len(compressedSeeds()); n != 2*len(compressible())+2 {
		t.Fatalf("%d compressed seeds, want %d", n, 2*len(compressible())+2)
	}
}

// zstdStream compresses n zero bytes with a streaming encoder, writing
// them 1 MiB at a time: the frame header then carries no content size, so
// only the decoder's running count can stop it, and the test never holds
// the n bytes.
func zstdStream(t *testing.T, n int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(chunk)))
		if _, err := w.Write(chunk[:k]); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(buf.Bytes()); err != nil || h.HasFCS {
		t.Fatalf("streamed zstd frame: header %+v, %v; want one without a content size", h, err)
	}
	return buf.Bytes()
}

// allocated runs f and returns the bytes the process allocated meanwhile.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDecompressionBombIsRefused: a frame whose compressed payload fits the
// frame limit but decompresses to more than MaxPayload is refused with
// ErrBadFrame, and reading it allocates memory bounded by the limit, not by
// what the payload claims or expands to (a gigabyte here). A payload of exactly MaxPayload
// still reads.
func TestDecompressionBombIsRefused(t *testing.T) {
	const bomb = 1 << 30 // what an unbounded decoder would allocate
	zeros := make([]byte, MaxPayload+1)

	s2Over := s2.Encode(nil, zeros)
	// An s2 header claiming a gigabyte, followed by the body of a real
	// MaxPayload+1 stream: the claim alone must stop it.
	s2Claim := append(binary.AppendUvarint(nil, bomb), s2Over[len(binary.AppendUvarint(nil, MaxPayload+1)):]...)
	zstdOver := zstdEncoder().EncodeAll(zeros, nil) // content size in the header
	var zh zstd.Header
	if err := zh.Decode(zstdOver); err != nil || !zh.HasFCS || zh.FrameContentSize != MaxPayload+1 {
		t.Fatalf("zstd EncodeAll header %+v, %v; want content size %d", zh, err, MaxPayload+1)
	}
	zstdBomb := zstdStream(t, bomb)
	// Frames each under the limit, together a gigabyte: the limit holds
	// for the payload, not per frame.
	var zstdMany []byte
	for one := zstdStream(t, 16<<20); len(zstdMany) < bomb/(16<<20)*len(one); {
		zstdMany = append(zstdMany, one...)
	}

	for _, tc := range []struct {
		name    string
		flag    uint8
		payload []byte
	}{
		{"s2 MaxPayload+1", FlagS2, s2Over},
		{"s2 header claiming 1 GiB", FlagS2, s2Claim},
		{"zstd MaxPayload+1 with content size", FlagZstd, zstdOver},
		{"zstd 1 GiB streamed without content size", FlagZstd, zstdBomb},
		{"zstd 64 streamed frames of 16 MiB", FlagZstd, zstdMany},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := rawFrame(TypeWrite, tc.flag, tc.payload)
			if len(tc.payload) > MaxPayload/4 {
				t.Fatalf("the bomb's compressed payload is %d bytes: not a bomb", len(tc.payload))
			}
			var err error
			var got Frame
			n := allocated(func() { got, err = ReadFrame(bytes.NewReader(frame), nil) })
			if err == nil {
				t.Fatalf("accepted: %d-byte payload from %d compressed bytes", len(got.Payload), len(tc.payload))
			}
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("refused with %v, want ErrBadFrame", err)
			}
			// Without a content size the zstd decoder grows its output by
			// doubling and may pass the limit by a block or a frame before
			// it stops (about 200 MiB allocated in all, however big the
			// bomb): allow half the gigabyte an unbounded decoder needs.
			if n > bomb/2 {
				t.Fatalf("refusing it allocated %d MiB (limit %d MiB)", n>>20, MaxPayload>>20)
			}
			t.Logf("refused (%v) after allocating %d KiB", err, n>>10)
		})
	}

	t.Run("exactly MaxPayload reads", func(t *testing.T) {
		for _, c := range []Compression{S2, Zstd} {
			out, flag, ok := Compress(c, zeros[:MaxPayload])
			if !ok {
				t.Fatalf("compression %d: zeroes did not compress", c)
			}
			f, err := ReadFrame(bytes.NewReader(rawFrame(TypeWrite, flag, out)), nil)
			if err != nil || len(f.Payload) != MaxPayload {
				t.Fatalf("compression %d: %d bytes, %v; want %d", c, len(f.Payload), err, MaxPayload)
			}
		}
	})
}
