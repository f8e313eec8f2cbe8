package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"testing"
)

func samples() []Message {
	data := bytes.Repeat([]byte("data"), 1024)
	return []Message{
		&Hello{Version: Version, Volume: "r0", NodeID: 3, DataSize: 1 << 30, Granularity: 4096, Protocol: 'C', Role: 1, Disk: 7,
			Flags: HelloCrashedPrimary | HelloDiscardMyData, Current: 0xabc, Bitmap: 0xdef, History: []uint64{1, 2, 3}, ChangedBits: 99, SyncToward: 0x5eed},
		&State{Role: 1, Disk: 2, Current: 77, InSync: 0b101},
		&State{Role: 1, Disk: 4, Current: 78, InSync: 0b111, Pending: true},
		&State{Role: 2, Disk: 1, Current: 79, SyncToward: 0x5eed},
		&State{Role: 1, Disk: 4, Current: 80, InSync: 0b11, Uncommitted: true},
		&Write{Seq: 5, Offset: 4096, FUA: true, CRC: Checksum(data), Applied: 3, Data: data},
		&RecvAck{Seq: 9}, &WriteAck{Seq: 10}, &WriteAck{Seq: 11, Err: "disk failed"},
		&Flush{Epoch: 3}, &FlushAck{Epoch: 3}, &FlushAck{Epoch: 4, Err: "EIO"},
		&Bitmap{StartWord: 100, Last: true, Words: []uint64{0, 1, ^uint64(0)}},
		&ResyncData{Offset: 1 << 20, CRC: Checksum(data), Data: data},
		&ResyncData{Offset: 2 << 20, CRC: Checksum(data), Lagging: 0b10010, Data: data},
		&ResyncAck{Offset: 1 << 20, Length: 4096}, &SyncDone{Current: 0x1234, History: []uint64{9, 8}},
		&OutOfSync{Node: 2, Ranges: []Range{{0, 4096}, {1 << 30, 1 << 20}}}, &Confirmed{Seq: 77},
		&Digest{Kind: DigestVerify, Offset: 8192, Length: 8192, Sums: bytes.Repeat([]byte{7}, 2*SumSize)},
		&DigestReply{Kind: DigestResync, Offset: 8192, Length: 4096, Unequal: []uint64{5}},
		&VerifyStart{}, &VerifyDone{Checked: 1 << 30, Differences: 3},
		&Ping{}, &PingAck{}, &Goodbye{Reason: "both sides are primary"},
		&Zero{Seq: 7, Offset: 1 << 30, Length: 1 << 31, Deallocate: true, FUA: true, Applied: 2},
	}
}

func TestRoundTrip(t *testing.T) {
	var stream bytes.Buffer
	for _, m := range samples() {
		stream.Write(AppendFrame(nil, m))
	}
	for _, want := range samples() {
		f, err := ReadFrame(&stream, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(f)
		if err != nil {
			t.Fatalf("%v: %v", want.Type(), err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Fatalf("%v round trip:\n got %+v\nwant %+v", want.Type(), got, want)
		}
	}
}

// normalize makes nil and empty slices compare equal.
func normalize(m Message) Message {
	switch m := m.(type) {
	case *Hello:
		if len(m.History) == 0 {
			c := *m
			c.History = nil
			return &c
		}
	case *SyncDone:
		if len(m.History) == 0 {
			c := *m
			c.History = nil
			return &c
		}
	}
	return m
}

func TestCompressedFrame(t *testing.T) {
	for _, c := range []Compression{S2, Zstd} {
		m := &Bitmap{Words: make([]uint64, 4096)}
		payload := m.Append(nil)
		out, flag, ok := Compress(c, payload)
		if !ok {
			t.Fatalf("compression %d: a zero bitmap did not compress", c)
		}
		frame := make([]byte, HeaderSize, HeaderSize+len(out))
		PutHeader(frame, TypeBitmap, flag, len(out))
		frame = append(frame, out...)
		f, err := ReadFrame(bytes.NewReader(frame), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(f)
		if err != nil || len(got.(*Bitmap).Words) != 4096 {
			t.Fatalf("compression %d: bitmap: %v", c, err)
		}
	}
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(i*7919 + i*i*31)
	}
	if _, _, ok := Compress(NoCompression, random); ok {
		t.Fatal("NoCompression compressed")
	}
}

func TestChecksumMismatch(t *testing.T) {
	data := []byte("hello world")
	frame := AppendFrame(nil, &Write{Seq: 1, CRC: Checksum(data), Data: data})
	frame[len(frame)-1] ^= 0x20 // one flipped bit in the data
	f, _ := ReadFrame(bytes.NewReader(frame), nil)
	if _, err := Decode(f); !errors.Is(err, ErrChecksum) {
		t.Fatalf("corrupted write: %v, want ErrChecksum", err)
	}
}

func TestBadFrames(t *testing.T) {
	good := AppendFrame(nil, &Flush{Epoch: 1})
	cases := map[string][]byte{
		"bad magic":      append([]byte{'X', 'P'}, good[2:]...),
		"unknown flag":   func() []byte { b := append([]byte{}, good...); b[3] = 0x80; return b }(),
		"huge length":    func() []byte { b := append([]byte{}, good...); be.PutUint32(b[4:], MaxPayload+1); return b }(),
		"truncated body": good[:len(good)-1],
	}
	for name, b := range cases {
		if _, err := ReadFrame(bytes.NewReader(b), nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, f := range map[string]Frame{
		"unknown type":   {Type: 200},
		"trailing bytes": {Type: TypeFlush, Payload: make([]byte, 9)},
		"short hello":    {Type: TypeHello, Payload: []byte{0, 1}},
		"bool of 2":      {Type: TypeWrite, Payload: append(make([]byte, 16), 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)},
		"ragged sums":    {Type: TypeDigest, Payload: append([]byte{DigestVerify}, make([]byte, 12+5)...)},
		"odd bitmap":     {Type: TypeBitmap, Payload: make([]byte, 12)},
		"long history":   {Type: TypeHello, Payload: append((&Hello{}).Append(nil)[:len((&Hello{}).Append(nil))-1], 33)},
	} {
		if _, err := Decode(f); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: %v, want ErrBadFrame", name, err)
		}
	}
}

// TestResyncFixed: ResyncFixed is the length of what AppendFixed writes
// (the integration test's framing allowance counts on it).
func TestResyncFixed(t *testing.T) {
	if n := len((&ResyncData{}).AppendFixed(nil)); n != ResyncFixed {
		t.Fatalf("ResyncData fixed part is %d bytes, ResyncFixed says %d", n, ResyncFixed)
	}
}

// TestLyingHeaderCostsLittle: a header announcing the largest payload,
// followed by a few bytes and the end of the stream, is an error and costs
// the reader far less than the announced size; a real large payload still
// arrives whole.
func TestLyingHeaderCostsLittle(t *testing.T) {
	h := make([]byte, HeaderSize)
	PutHeader(h, TypeWrite, 0, MaxPayload)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadFrame(bytes.NewReader(append(h, 1, 2, 3)), nil)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 2*firstRead {
		t.Fatalf("a %d-byte header made the reader allocate %d bytes", HeaderSize, got)
	}

	data := bytes.Repeat([]byte("replicad"), (3*firstRead+100)/8)
	w := &Write{Seq: 1, Offset: 4096, CRC: Checksum(data), Data: data}
	f, err := ReadFrame(bytes.NewReader(AppendFrame(nil, w)), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.(*Write); !bytes.Equal(got.Data, w.Data) || got.Offset != w.Offset {
		t.Fatalf("large write read back as %d bytes at %d", len(got.Data), got.Offset)
	}
}
