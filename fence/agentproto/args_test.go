package agentproto

import (
	"errors"
	"reflect"
	"testing"
)

func TestEncodeArgsPutsLinesInOrder(t *testing.T) {
	got, err := EncodeArgs([]Arg{{"ip", "10.0.0.1"}, {"password", "s3cret=x"}, {"action", "off"}, {"port", "node-a"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "ip=10.0.0.1\npassword=s3cret=x\naction=off\nport=node-a\n"
	if string(got) != want {
		t.Fatalf("EncodeArgs = %q, want %q", got, want)
	}
}

func TestEncodeArgsRejectsWhatTheProtocolCannotCarry(t *testing.T) {
	for _, a := range []Arg{
		{"", "x"},
		{"a=b", "x"},
		{"a b", "x"},
		{"#comment", "x"},
		{"ip", "1\naction=reboot"}, // injection of a second line
		{"ip", "a\x00b"},
		{"ip", `"quoted"`},
		{"ip", " padded"},
	} {
		if _, err := EncodeArgs([]Arg{a}); !errors.Is(err, ErrBadArg) {
			t.Errorf("EncodeArgs(%q=%q) err = %v, want ErrBadArg", a.Name, a.Value, err)
		}
	}
}

func TestParseArgsFollowsFencingPy(t *testing.T) {
	in := "# comment\n\n  ip=10.0.0.1  \npassword=\"p w\"\naction=off\naction=reboot\nipport\nredfish-uri=/x\n"
	got, err := ParseArgs([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ip": "10.0.0.1", "password": "p w", "action": "reboot", "ipport": "", "redfish_uri": "/x"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseArgs = %v, want %v", got, want)
	}
}

func TestArgsRoundTrip(t *testing.T) {
	args := []Arg{{"ip", "127.0.0.1"}, {"login", "admin"}, {"passwd", "a=b#c"}, {"action", "status"}}
	b, err := EncodeArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseArgs(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range args {
		if got[a.Name] != a.Value {
			t.Errorf("%s: got %q, want %q", a.Name, got[a.Name], a.Value)
		}
	}
}

func TestExitText(t *testing.T) {
	cases := []struct {
		action string
		code   int
		want   string
	}{
		{ActionStatus, 2, "power is off"},
		{ActionOff, 2, "bad arguments"},
		{ActionOff, 3, "login denied"},
		{ActionOff, 5, "timed out"},
		{ActionOff, 7, "timed out waiting for power off"},
		{ActionOff, 99, "unknown exit code 99"},
		{ActionOff, -1, "killed by a signal"},
	}
	for _, c := range cases {
		if got := ExitText(c.action, c.code); got != c.want {
			t.Errorf("ExitText(%s, %d) = %q, want %q", c.action, c.code, got, c.want)
		}
	}
}

func TestParseListSkipsNotices(t *testing.T) {
	out := "NOTICE: List option is not working on this device yet\nN/A\n1,node-a\n2,node-b,ON\n,empty\n"
	got := ParseList([]byte(out), "")
	want := []Plug{{"1", "node-a"}, {"2", "node-b"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseList = %v, want %v", got, want)
	}
}

func FuzzParseArgs(f *testing.F) {
	f.Add([]byte("action=off\nport=a\n"))
	f.Add([]byte("# c\n x=\"y\" \nz\n=bad\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseArgs(b)
		if err != nil {
			return
		}
		// Whatever parsed must re-encode (when encodable) to the same map.
		var args []Arg
		for k, v := range m {
			if checkArg(k, v) != nil {
				return
			}
			args = append(args, Arg{k, v})
		}
		enc, err := EncodeArgs(args)
		if err != nil {
			t.Fatalf("EncodeArgs of checked args: %v", err)
		}
		back, err := ParseArgs(enc)
		if err != nil {
			t.Fatalf("ParseArgs(EncodeArgs(x)): %v", err)
		}
		if !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip changed %v into %v", m, back)
		}
	})
}
