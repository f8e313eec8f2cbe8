package localproto

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/replicad/replicad/dlm/locktable"
)

func full() *Msg {
	return &Msg{Type: TypeCompletion, Req: 1 << 40, Lockspace: "gfs2", Name: "res\x00\xff", LkID: 0xfffffffe,
		Mode: locktable.PW, Flags: locktable.ValBlk | locktable.Persistent, LVB: bytes.Repeat([]byte{9}, 64),
		LVBLen: 64, Force: 2, Result: locktable.ResultGranted, SB: locktable.ValNotValid, LVBSeq: 77,
		Bits: BitFinal | BitWantBast, Code: CodeBusy, Err: "busy", Data: []byte(`{"x":1}`)}
}

func TestRoundTrip(t *testing.T) {
	for _, m := range []*Msg{full(), {Type: TypeHello}, {Type: TypeList, Mode: locktable.IV}} {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, m); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFrame(&buf, MaxReply)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
		}
	}
}

func TestRejects(t *testing.T) {
	good := Encode(full())
	bad := func(f func(m *Msg)) []byte { m := full(); f(m); return Encode(m) }
	cases := map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{9}, good[1:]...),
		"type":      bad(func(m *Msg) { m.Type = 30 }),
		"mode":      bad(func(m *Msg) { m.Mode = 7 }),
		"force":     bad(func(m *Msg) { m.Force = 4 }),
		"bits":      bad(func(m *Msg) { m.Bits = 0x80 }),
		"code":      bad(func(m *Msg) { m.Code = 200 }),
		"long name": bad(func(m *Msg) { m.Name = string(make([]byte, 65)) }),
		"long LVB":  bad(func(m *Msg) { m.LVB = make([]byte, 65) }),
		"trailing":  append(append([]byte{}, good...), 1),
		"truncated": good[:len(good)-3],
	}
	for name, b := range cases {
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: decoded", name)
		} else if name == "version" && !errors.Is(err, ErrVersion) {
			t.Errorf("version: %v", err)
		}
	}
	var buf bytes.Buffer
	WriteFrame(&buf, full())
	if _, err := ReadFrame(&buf, 10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized frame: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(full()))
	f.Add(Encode(&Msg{Type: TypeLock, Name: "x", Mode: locktable.EX}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(Encode(m))
		if err != nil || !reflect.DeepEqual(m, again) {
			t.Fatalf("re-encoding changed the message: %v", err)
		}
	})
}
