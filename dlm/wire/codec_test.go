package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/replicad/replicad/dlm/locktable"
)

func sample() *Envelope {
	lvb := bytes.Repeat([]byte{7}, 32)
	return &Envelope{
		Lockspace: "gfs2", From: 1, FromInc: 1 << 40, To: 3, ToInc: 99, Seq: 12, Ack: 11,
		Msgs: []Msg{
			{Type: TypeHello, ID: 99, Node: 32, Bits: BitJoined},
			{Type: TypeRequest, Gen: 4, LkID: 0xdeadbeef, Name: "inode\x00\xff", Mode: locktable.EX, RqMode: locktable.IV,
				Flags: locktable.ValBlk | locktable.NoQueue, LVB: lvb, Bits: BitWantBast},
			{Type: TypeRequestReply, LkID: 7, Result: locktable.ResultGranted, Mode: locktable.PR, SB: locktable.ValNotValid, LVB: lvb, LVBSeq: 1<<32 - 1},
			{Type: TypeStatus, Gen: 3, Bits: BitQuorate | BitRecovering,
				View:  []Member{{1, 5}, {2, 6}, {3, 1<<64 - 1}},
				Fence: []FenceState{{Node: 2, Failed: 1 << 50, Fenced: 3}}},
			{Type: TypeDirInfo, Gen: 5, Bits: BitMore, Dir: []DirEntry{{Name: "a", Owner: true}, {Name: "b", Believed: 2}}},
			{Type: TypeMasters, Gen: 5, Masters: []MasterEntry{{Name: "a", Master: 1}, {Name: "b", Master: 3, Remaster: true}}},
			{Type: TypeLocks, Gen: 5, Locks: []LockReport{
				{Name: "b", LkID: 9, GrMode: locktable.PR, RqMode: locktable.EX, Status: locktable.StatusConverting,
					Flags: locktable.ValBlk, SB: locktable.Demoted, LVB: lvb, LVBSeq: 4, HighBast: locktable.EX, WantBast: true},
				{Name: "b", LkID: 10, GrMode: locktable.IV, RqMode: locktable.CW, Status: locktable.StatusWaiting, HighBast: locktable.NL},
			}},
			{Type: TypeBast, LkID: 3, Name: "x", Mode: locktable.CW},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	env := sample()
	got, err := Unmarshal(Marshal(env))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, env) {
		t.Fatalf("round trip changed the envelope:\n got %+v\nwant %+v", got, env)
	}
	empty := &Envelope{}
	if got, err := Unmarshal(Marshal(empty)); err != nil || !reflect.DeepEqual(got, empty) {
		t.Fatalf("empty envelope: %+v, %v", got, err)
	}
	if n := len(Marshal(&Envelope{Msgs: []Msg{{Type: TypeHello}}})) - len(Marshal(&Envelope{})); n != minMsgLen {
		t.Fatalf("an all-zero message takes %d bytes, minMsgLen is %d", n, minMsgLen)
	}
}

func TestRejects(t *testing.T) {
	good := Marshal(sample())
	mut := func(f func(e *Envelope)) []byte {
		e := sample()
		f(e)
		return Marshal(e)
	}
	cases := map[string][]byte{
		"empty":          {},
		"wrong version":  append([]byte{Version + 1}, good[1:]...),
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte{}, good...), 0),
		"long name":      mut(func(e *Envelope) { e.Msgs[1].Name = strings.Repeat("n", 65) }),
		"long lockspace": mut(func(e *Envelope) { e.Lockspace = strings.Repeat("l", 65) }),
		"long LVB":       mut(func(e *Envelope) { e.Msgs[1].LVB = make([]byte, 65) }),
		"bad mode":       mut(func(e *Envelope) { e.Msgs[1].Mode = 6 }),
		"bad type":       mut(func(e *Envelope) { e.Msgs[0].Type = 99 }),
		"bad bits":       mut(func(e *Envelope) { e.Msgs[0].Bits = 0x80 }),
		"bad status":     mut(func(e *Envelope) { e.Msgs[6].Locks[0].Status = 9 }),
		"huge count":     {Version, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad varint":     {Version, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	}
	for name, b := range cases {
		_, err := Unmarshal(b)
		if err == nil {
			t.Errorf("%s: decoded", name)
			continue
		}
		if name == "wrong version" {
			if !errors.Is(err, ErrVersion) {
				t.Errorf("%s: %v, want ErrVersion", name, err)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	body := Marshal(sample())
	if err := WriteFrame(&buf, body); err != nil {
		t.Fatal(err)
	}
	if err := WriteFrame(&buf, nil); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFrame(&buf, 0)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("ReadFrame = %d bytes, %v", len(got), err)
	}
	if got, err := ReadFrame(&buf, 0); err != nil || len(got) != 0 {
		t.Fatalf("empty frame = %v, %v", got, err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 1, 0}), 16); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 4, 1}), 0); err == nil {
		t.Fatal("short frame read")
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add(Marshal(sample()))
	f.Add(Marshal(&Envelope{}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Unmarshal(b)
		if err != nil {
			return
		}
		again, err := Unmarshal(Marshal(env))
		if err != nil {
			t.Fatalf("re-encoding a decoded envelope failed: %v", err)
		}
		if !reflect.DeepEqual(env, again) {
			t.Fatalf("decode(encode(decode(b))) != decode(b)")
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	WriteFrame(&buf, Marshal(sample()))
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			body, err := ReadFrame(r, 1<<16)
			if err != nil {
				return
			}
			if len(body) > 1<<16 {
				t.Fatalf("frame of %d bytes over the limit", len(body))
			}
			Unmarshal(body)
		}
	})
}
