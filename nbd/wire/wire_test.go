package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestGreeting(t *testing.T) {
	g := Greeting()
	want := []byte{'N', 'B', 'D', 'M', 'A', 'G', 'I', 'C', 'I', 'H', 'A', 'V', 'E', 'O', 'P', 'T', 0, 3}
	if !bytes.Equal(g, want) {
		t.Fatalf("greeting % x, want % x", g, want)
	}
}

func TestClientFlags(t *testing.T) {
	for _, c := range []struct {
		f        uint32
		noZeroes bool
		ok       bool
	}{
		{1, false, true}, {3, true, true}, {0, false, false}, {2, false, false}, {7, false, false}, {1 << 31, false, false},
	} {
		nz, err := ParseClientFlags(c.f)
		if (err == nil) != c.ok || (c.ok && nz != c.noZeroes) {
			t.Errorf("flags %#x: noZeroes=%v err=%v", c.f, nz, err)
		}
	}
}

func TestReadOption(t *testing.T) {
	var b bytes.Buffer
	b.Write(be.AppendUint64(nil, MagicOption))
	b.Write(be.AppendUint32(nil, OptGo))
	b.Write(be.AppendUint32(nil, 3))
	b.WriteString("abc")
	o, _, err := ReadOption(&b, 100)
	if err != nil || o.ID != OptGo || string(o.Data) != "abc" {
		t.Fatalf("ReadOption = %+v, %v", o, err)
	}
	b.Reset()
	b.Write(be.AppendUint64(nil, MagicOption))
	b.Write(be.AppendUint32(nil, 99))
	b.Write(be.AppendUint32(nil, 1<<20))
	if _, n, err := ReadOption(&b, 100); !errors.Is(err, ErrOptionTooLong) || n != 1<<20 {
		t.Fatalf("long option: n=%d err=%v", n, err)
	}
	b.Reset()
	b.Write(make([]byte, 16))
	if _, _, err := ReadOption(&b, 100); !errors.Is(err, ErrBadMagic) {
		t.Fatalf("zero magic: %v", err)
	}
}

func infoData(name string, infos ...uint16) []byte {
	d := be.AppendUint32(nil, uint32(len(name)))
	d = append(d, name...)
	d = be.AppendUint16(d, uint16(len(infos)))
	for _, i := range infos {
		d = be.AppendUint16(d, i)
	}
	return d
}

func TestParseInfoRequest(t *testing.T) {
	r, err := ParseInfoRequest(infoData("vol", InfoBlockSize, InfoName))
	if err != nil || r.Name != "vol" || len(r.Infos) != 2 || r.Infos[0] != InfoBlockSize {
		t.Fatalf("%+v, %v", r, err)
	}
	bad := [][]byte{
		nil,
		{0, 0, 0},
		infoData("vol")[:6],              // truncated count
		append(infoData("vol", 1), 0),    // trailing byte
		be.AppendUint32(nil, 0xffffffff), // name longer than data
		infoData("a\x00b"),               // NUL in name
		infoData(string(bytes.Repeat([]byte{'x'}, MaxNameLength+1))),
	}
	for i, d := range bad {
		if _, err := ParseInfoRequest(d); !errors.Is(err, ErrMalformed) {
			t.Errorf("case %d: err %v, want ErrMalformed", i, err)
		}
	}
}

func TestRequestRoundTrip(t *testing.T) {
	r := Request{Flags: CmdFlagFUA, Type: CmdWrite, Cookie: 0x1122334455667788, Offset: 1 << 40, Length: 4096}
	var b [RequestSize]byte
	PutRequest(&b, r)
	got, err := ParseRequest(&b)
	if err != nil || got != r {
		t.Fatalf("%+v, %v", got, err)
	}
	b[0] ^= 1
	if _, err := ParseRequest(&b); !errors.Is(err, ErrBadMagic) {
		t.Fatalf("bad magic accepted: %v", err)
	}
}

// TestCheck is the protocol's table of request errors.
func TestCheck(t *testing.T) {
	const size, maxp = 1 << 20, 1 << 16
	cases := []struct {
		name string
		r    Request
		ro   bool
		want uint32
	}{
		{"read ok", Request{Type: CmdRead, Offset: 0, Length: 4096}, false, 0},
		{"read last byte", Request{Type: CmdRead, Offset: size - 1, Length: 1}, false, 0},
		{"read past end is EINVAL", Request{Type: CmdRead, Offset: size - 1, Length: 2}, false, EINVAL},
		{"read offset overflow", Request{Type: CmdRead, Offset: ^uint64(0), Length: 2}, false, EINVAL},
		{"read too large", Request{Type: CmdRead, Length: maxp + 1}, false, EINVAL},
		{"read zero length", Request{Type: CmdRead, Length: 0}, false, EINVAL},
		{"read on read-only ok", Request{Type: CmdRead, Length: 1}, true, 0},
		{"read with FUA is EINVAL", Request{Type: CmdRead, Flags: CmdFlagFUA, Length: 1}, false, EINVAL},
		{"write ok with FUA", Request{Type: CmdWrite, Flags: CmdFlagFUA, Length: 512}, false, 0},
		{"write past end is ENOSPC", Request{Type: CmdWrite, Offset: size, Length: 1}, false, ENOSPC},
		{"write offset overflow is ENOSPC", Request{Type: CmdWrite, Offset: ^uint64(0) - 1, Length: 4}, false, ENOSPC},
		{"write on read-only is EPERM", Request{Type: CmdWrite, Length: 1}, true, EPERM},
		{"write with NO_HOLE is EINVAL", Request{Type: CmdWrite, Flags: CmdFlagNoHole, Length: 1}, false, EINVAL},
		{"write too large", Request{Type: CmdWrite, Length: maxp + 1}, false, EINVAL},
		{"flush ok", Request{Type: CmdFlush}, false, 0},
		{"flush on read-only ok", Request{Type: CmdFlush}, true, 0},
		{"flush with FUA is EINVAL", Request{Type: CmdFlush, Flags: CmdFlagFUA}, false, EINVAL},
		{"trim ok", Request{Type: CmdTrim, Flags: CmdFlagFUA, Offset: 4096, Length: size - 4096}, false, 0},
		{"trim past end is EINVAL", Request{Type: CmdTrim, Offset: 4096, Length: size}, false, EINVAL},
		{"trim on read-only is EPERM", Request{Type: CmdTrim, Length: 1}, true, EPERM},
		{"trim larger than payload limit ok", Request{Type: CmdTrim, Length: size}, false, 0},
		{"write zeroes NO_HOLE|FUA ok", Request{Type: CmdWriteZeroes, Flags: CmdFlagNoHole | CmdFlagFUA, Length: size}, false, 0},
		{"write zeroes past end is ENOSPC", Request{Type: CmdWriteZeroes, Offset: 1, Length: size}, false, ENOSPC},
		{"write zeroes FAST_ZERO unadvertised", Request{Type: CmdWriteZeroes, Flags: CmdFlagFastZero, Length: 1}, false, EINVAL},
		{"cache unadvertised", Request{Type: CmdCache, Length: 1}, false, EINVAL},
		{"block status unadvertised", Request{Type: CmdBlockStatus, Length: 1}, false, EINVAL},
		{"unknown command", Request{Type: 200, Length: 1}, false, EINVAL},
		{"disc ok", Request{Type: CmdDisc}, false, 0},
	}
	for _, c := range cases {
		if got := Check(c.r, size, maxp, c.ro); got != c.want {
			t.Errorf("%s: Check = %d, want %d", c.name, got, c.want)
		}
	}
}
