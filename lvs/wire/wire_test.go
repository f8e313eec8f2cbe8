package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// A greeting captured from MariaDB 10.11.14 (Debian 12) on loopback.
const mariadbGreeting = "640000000a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100030000005a483a2a60263a3200fef7080200ff81150000000000001d0000002c26784b4c7e546b3c2a5b6d006d7973716c5f6e61746976655f70617373776f726400"

func TestParseRealMariaDBGreeting(t *testing.T) {
	raw, _ := hex.DecodeString(mariadbGreeting)
	seq, p, err := ReadMySQLPacket(bytes.NewReader(raw), 1<<16)
	if err != nil || seq != 0 {
		t.Fatalf("ReadMySQLPacket: seq %d, %v", seq, err)
	}
	g, err := ParseGreeting(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(g.ServerVersion, "MariaDB") || g.ConnectionID != 3 {
		t.Errorf("version %q id %d", g.ServerVersion, g.ConnectionID)
	}
	if len(g.AuthData) != 20 || g.AuthPlugin != NativePasswordPlugin {
		t.Errorf("auth data %d bytes, plugin %q", len(g.AuthData), g.AuthPlugin)
	}
	if g.Capabilities&ClientProtocol41 == 0 || g.Capabilities&ClientPluginAuth == 0 {
		t.Errorf("capabilities %#x", g.Capabilities)
	}
}

func TestGreetingErrors(t *testing.T) {
	// "Too many connections" sent instead of a greeting, without SQL state.
	tooMany := append([]byte{0xff, 0x10, 0x04}, "Too many connections"...)
	_, err := ParseGreeting(tooMany)
	var se *ServerError
	if !errors.As(err, &se) || se.Code != 1040 || se.Message != "Too many connections" {
		t.Fatalf("ERR greeting: %v", err)
	}
	for name, p := range map[string][]byte{
		"empty":          nil,
		"protocol 9":     {9, 'x', 0},
		"no terminator":  {10, 'x', 'y'},
		"truncated":      {10, 'v', 0, 1, 2, 3},
		"bad filler":     append([]byte{10, 'v', 0}, 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x77, 0, 0),
		"cut capability": append(append([]byte{10, 'v', 0}, make([]byte, 15)...), 1, 2),
	} {
		if _, err := ParseGreeting(p); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestScrambleKnownAnswer(t *testing.T) {
	// Computed independently (Python hashlib): SHA1("secret") XOR
	// SHA1(salt + SHA1(SHA1("secret"))) for salt = 20 bytes 0x01..0x14.
	salt := make([]byte, 20)
	for i := range salt {
		salt[i] = byte(i + 1)
	}
	got := hex.EncodeToString(Scramble(salt, "secret"))
	if got != "b32bb3a583e1340c0a1108d58b1be49781ad8c2f" {
		t.Fatalf("scramble %s", got)
	}
	if Scramble(salt, "") != nil {
		t.Fatal("empty password must give an empty answer")
	}
	// Property of the construction: XOR with SHA1(password) recovers
	// SHA1(salt + SHA1(SHA1(password))), which the server can compute.
	if a, b := Scramble(salt, "x"), Scramble(salt, "y"); bytes.Equal(a, b) {
		t.Fatal("different passwords, same scramble")
	}
}

func TestHandshakeResponseLayout(t *testing.T) {
	g := Greeting{AuthData: bytes.Repeat([]byte{7}, 20)}
	b := HandshakeResponse(g, "replicad_check", "pw")
	caps := binary.LittleEndian.Uint32(b)
	if caps&ClientProtocol41 == 0 || caps&ClientSecureConnection == 0 || caps&ClientPluginAuth == 0 {
		t.Fatalf("caps %#x", caps)
	}
	rest := b[32:]
	user, rest, _ := bytes.Cut(rest, []byte{0})
	if string(user) != "replicad_check" || rest[0] != 20 {
		t.Fatalf("user %q auth length %d", user, rest[0])
	}
	if plugin := string(rest[21 : len(rest)-1]); plugin != NativePasswordPlugin {
		t.Fatalf("plugin %q", plugin)
	}
}

func TestParseLoginReply(t *testing.T) {
	if r, err := ParseLoginReply([]byte{0, 0, 0, 2, 0, 0, 0}); err != nil || !r.OK {
		t.Fatalf("OK: %+v %v", r, err)
	}
	denied := append([]byte{0xff, 0x15, 0x04, '#', '2', '8', '0', '0', '0'}, "Access denied for user"...)
	if r, err := ParseLoginReply(denied); err != nil || r.Err == nil || r.Err.Code != 1045 || r.Err.SQLState != "28000" {
		t.Fatalf("ERR: %+v %v", r, err)
	}
	sw := append(append([]byte{0xfe}, "mysql_native_password\x00"...), append(bytes.Repeat([]byte{9}, 20), 0)...)
	if r, err := ParseLoginReply(sw); err != nil || r.SwitchTo != NativePasswordPlugin || len(r.SwitchData) != 20 {
		t.Fatalf("auth switch: %+v %v", r, err)
	}
	for _, p := range [][]byte{nil, {0xfe, 'a'}, {0x42}, {0xff, 1}} {
		if _, err := ParseLoginReply(p); !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: %v", p, err)
		}
	}
}

func TestMySQLPacketLimits(t *testing.T) {
	big := []byte{0xff, 0xff, 0x00, 0}
	if _, _, err := ReadMySQLPacket(bytes.NewReader(big), 1024); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	if _, _, err := ReadMySQLPacket(bytes.NewReader([]byte{5, 0, 0, 0, 1}), 1024); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated: %v", err)
	}
	round := AppendMySQLPacket(nil, 3, []byte("hello"))
	seq, p, err := ReadMySQLPacket(bytes.NewReader(round), 1024)
	if err != nil || seq != 3 || string(p) != "hello" {
		t.Fatalf("round trip: %d %q %v", seq, p, err)
	}
}

func reply(words ...uint32) []byte {
	var b []byte
	for _, w := range words {
		b = binary.BigEndian.AppendUint32(b, w)
	}
	return b
}

func TestNullCallBytes(t *testing.T) {
	b := NullCall(0x01020304, NFSProgram, 3)
	want := reply(0x80000000|40, 0x01020304, 0, 2, 100003, 3, 0, 0, 0, 0, 0)
	if !bytes.Equal(b, want) {
		t.Fatalf("NULL call\n got %x\nwant %x", b, want)
	}
}

func TestParseReply(t *testing.T) {
	cases := []struct {
		name string
		rec  []byte
		ok   bool
		msg  string
	}{
		{"success", reply(7, 1, 0, 0, 0, 0), true, ""},
		{"success with verifier", reply(7, 1, 0, 1, 8, 0xaaaaaaaa, 0xbbbbbbbb, 0), true, ""},
		{"prog unavail", reply(7, 1, 0, 0, 0, 1), false, "PROG_UNAVAIL"},
		{"prog mismatch", reply(7, 1, 0, 0, 0, 2, 4, 4), false, "supports 4..4"},
		{"rpc mismatch", reply(7, 1, 1, 0, 2, 2), false, "rpc version mismatch"},
		{"auth error", reply(7, 1, 1, 1, 5), false, "auth error 5"},
	}
	for _, c := range cases {
		r, err := ParseReply(c.rec)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.XID != 7 {
			t.Errorf("%s: xid %d", c.name, r.XID)
		}
		if e := r.Err(); (e == nil) != c.ok || (e != nil && !strings.Contains(e.Error(), c.msg)) {
			t.Errorf("%s: Err() = %v", c.name, e)
		}
	}
	for name, rec := range map[string][]byte{
		"call not reply":  reply(7, 0, 0),
		"truncated":       reply(7, 1, 0, 0),
		"huge verifier":   reply(7, 1, 0, 0, 1<<30),
		"bad reply stat":  reply(7, 1, 9),
		"bad reject stat": reply(7, 1, 1, 7),
		"empty":           nil,
	} {
		if _, err := ParseReply(rec); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestReadRecordFragments(t *testing.T) {
	var b []byte
	b = append(b, reply(3)...)
	b = append(b, 'a', 'b', 'c')
	b = append(b, reply(0x80000002)...)
	b = append(b, 'd', 'e')
	rec, err := ReadRecord(bytes.NewReader(b), 100)
	if err != nil || string(rec) != "abcde" {
		t.Fatalf("fragments: %q %v", rec, err)
	}
	if _, err := ReadRecord(bytes.NewReader(reply(0x80001000)), 100); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	if _, err := ReadRecord(bytes.NewReader(append(reply(3), 'a')), 100); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a record cut short: %v", err)
	}
}

func FuzzParseGreeting(f *testing.F) {
	raw, _ := hex.DecodeString(mariadbGreeting)
	f.Add(raw[4:])
	f.Add([]byte{0xff, 0x10, 0x04, 'x'})
	f.Add([]byte{10, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		g, err := ParseGreeting(p)
		if err == nil && len(g.AuthData) > len(p) {
			t.Fatalf("auth data longer than the packet")
		}
	})
}

func FuzzLoginReply(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{0xff, 0x15, 0x04, '#', '2', '8', '0', '0', '0', 'x'})
	f.Add(append([]byte{0xfe}, "mysql_native_password\x00abc\x00"...))
	f.Fuzz(func(t *testing.T, p []byte) {
		ParseLoginReply(p)
		ParseServerError(p)
	})
}

func FuzzMySQLPacket(f *testing.F) {
	raw, _ := hex.DecodeString(mariadbGreeting)
	f.Add(raw)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, p, err := ReadMySQLPacket(bytes.NewReader(b), 4096)
		if err == nil && len(p) > 4096 {
			t.Fatal("limit ignored")
		}
	})
}

func FuzzParseReply(f *testing.F) {
	f.Add(reply(7, 1, 0, 0, 0, 0))
	f.Add(reply(7, 1, 0, 0, 0, 2, 4, 4))
	f.Add(reply(7, 1, 1, 0, 2, 2))
	f.Add(reply(7, 1, 1, 1, 5))
	f.Fuzz(func(t *testing.T, rec []byte) {
		r, err := ParseReply(rec)
		if err == nil {
			_ = r.Err()
		}
	})
}

func FuzzReadRecord(f *testing.F) {
	f.Add(append(reply(0x80000004), 1, 2, 3, 4))
	f.Add(append(append(reply(2), 1, 2), append(reply(0x80000001), 3)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := ReadRecord(bytes.NewReader(b), 1024)
		if err == nil && len(rec) > 1024 {
			t.Fatal("limit ignored")
		}
	})
}
