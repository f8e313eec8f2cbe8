package agentproto

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/replicad/replicad/internal/testenv"
)

// The testdata files are the metadata printed by fence-agents 4.x's
// fence_ipmilan, fence_redfish, fence_dummy and fence_scsi.
func TestParseRealAgentsMetadata(t *testing.T) {
	for _, name := range []string{"fence_ipmilan", "fence_redfish", "fence_dummy", "fence_scsi"} {
		b, err := os.ReadFile("testdata/" + name + ".xml")
		if err != nil {
			t.Fatal(err)
		}
		m, err := ParseMetadata(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m.Name != name {
			t.Errorf("%s: name %q", name, m.Name)
		}
		for _, a := range []string{ActionOff, ActionStatus, ActionMonitor, ActionMetadata} {
			if !m.Supports(a) {
				t.Errorf("%s: does not list action %s", name, a)
			}
		}
	}
}

func TestParseInstalledIpmilanMetadata(t *testing.T) {
	path := testenv.RequireTool(t, "fence_ipmilan", "fence-agents")
	out, err := exec.Command(path, "-o", "metadata").Output()
	if err != nil {
		t.Fatalf("fence_ipmilan -o metadata: %v", err)
	}
	m, err := ParseMetadata(out)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := m.Param("ipport")
	if !ok || p.Content.Type != "integer" || p.Content.Default != "623" {
		t.Fatalf("ipport parameter = %+v, %v; want integer default 623", p, ok)
	}
}

func TestCheckParamsAgainstIpmilan(t *testing.T) {
	b, _ := os.ReadFile("testdata/fence_ipmilan.xml")
	m, err := ParseMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	if errs := m.CheckParams(map[string]string{"ip": "10.0.0.1", "ipport": "623", "username": "admin", "password": "x", "lanplus": "1", "method": "onoff", "power-wait": "0"}); len(errs) != 0 {
		t.Fatalf("valid params rejected: %v", errs)
	}
	errs := m.CheckParams(map[string]string{"pasword": "x", "ipport": "six", "lanplus": "maybe", "method": "both"})
	want := []string{
		`ipport: "six" is not an integer`,
		`lanplus: "maybe" is not a boolean`,
		`method: "both" is not one of onoff, cycle`,
		`pasword: agent fence_ipmilan has no parameter "pasword"`,
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d problems %v, want %d", len(errs), errs, len(want))
	}
	for i, w := range want {
		if !strings.Contains(errs[i].Error(), w) {
			t.Errorf("problem %d = %q, want it to contain %q", i, errs[i], w)
		}
	}
}

func TestCheckParamsReportsMissingRequired(t *testing.T) {
	m := &Metadata{Name: "fence_x", Parameters: []Parameter{
		{Name: "action", Required: "1", Content: Content{Type: "string"}},
		{Name: "ip", Required: "1", Content: Content{Type: "string"}},
		{Name: "ipaddr", Obsoletes: "", Required: "0", Content: Content{Type: "string"}},
	}, Actions: []ActionDoc{{Name: "off"}}}
	errs := m.CheckParams(map[string]string{})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "ip: required by agent fence_x") {
		t.Fatalf("CheckParams = %v, want exactly the missing ip", errs)
	}
}

// fence_redfish marks both login (deprecated) and username (obsoletes
// login) required; either one satisfies both.
func TestCheckParamsObsoletedPairsStandInForEachOther(t *testing.T) {
	b, _ := os.ReadFile("testdata/fence_redfish.xml")
	m, err := ParseMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, params := range []map[string]string{{"username": "root"}, {"login": "root"}} {
		if errs := m.CheckParams(params); len(errs) != 0 {
			t.Errorf("CheckParams(%v) = %v", params, errs)
		}
	}
	if errs := m.CheckParams(map[string]string{"ip": "x"}); len(errs) != 2 {
		t.Errorf("without username or login: %v, want username and login reported", errs)
	}
}

func TestParseMetadataRejects(t *testing.T) {
	cases := []struct {
		name, xml, want string
	}{
		{"empty", "  ", "empty output"},
		{"not xml", "usage: fence_x <node>", "expected element type <resource-agent>"},
		{"wrong root", `<agent name="x"/>`, "expected element type <resource-agent>"},
		{"truncated", `<resource-agent name="x"><parameters>`, "XML syntax error"},
		{"no name", `<resource-agent><actions><action name="off"/></actions></resource-agent>`, "no name attribute"},
		{"no actions", `<resource-agent name="x"/>`, "no <actions>"},
		{"bad type", `<resource-agent name="x"><parameters><parameter name="a"><content type="float"/></parameter></parameters><actions><action name="off"/></actions></resource-agent>`, `parameters[0] ("a"): content type "float"`},
		{"bad default", `<resource-agent name="x"><parameters><parameter name="a"><content type="integer" default="z"/></parameter></parameters><actions><action name="off"/></actions></resource-agent>`, `default "z" is not an integer`},
		{"select without options", `<resource-agent name="x"><parameters><parameter name="a"><content type="select"/></parameter></parameters><actions><action name="off"/></actions></resource-agent>`, "select content without options"},
		{"dup param", `<resource-agent name="x"><parameters><parameter name="a"><content type="string"/></parameter><parameter name="a"><content type="string"/></parameter></parameters><actions><action name="off"/></actions></resource-agent>`, `parameters[1] ("a"): same name as parameters[0]`},
		{"dup action", `<resource-agent name="x"><actions><action name="off"/><action name="off"/></actions></resource-agent>`, `same name as actions[0]`},
		{"bad required", `<resource-agent name="x"><parameters><parameter name="a" required="yes"><content type="string"/></parameter></parameters><actions><action name="off"/></actions></resource-agent>`, `required="yes"`},
		{"two documents", `<resource-agent name="x"><actions><action name="off"/></actions></resource-agent><resource-agent name="y"/>`, "second element"},
		{"trailing text", `<resource-agent name="x"><actions><action name="off"/></actions></resource-agent> junk`, "text after"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseMetadata([]byte(c.xml))
			if !errors.Is(err, ErrBadMetadata) {
				t.Fatalf("err = %v, want ErrBadMetadata", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %q, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestMetadataMarshalRoundTrip(t *testing.T) {
	m := &Metadata{Name: "redfish", ShortDesc: "native", Parameters: []Parameter{
		{Name: "address", Required: "1", Content: Content{Type: "string"}, ShortDesc: "URL"},
		{Name: "insecure", Content: Content{Type: "boolean", Default: "0"}},
		{Name: "mode", Content: Content{Type: "select", Options: []Option{{"a"}, {"b"}}}},
	}, Actions: []ActionDoc{{Name: "off"}, {Name: "on"}, {Name: "status"}}}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseMetadata(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if back.Name != m.Name || len(back.Parameters) != 3 || back.Parameters[2].Content.Options[1].Value != "b" || !back.Supports("status") {
		t.Fatalf("round trip lost data: %+v", back)
	}
}

func FuzzParseMetadata(f *testing.F) {
	for _, name := range []string{"fence_dummy"} {
		b, err := os.ReadFile("testdata/" + name + ".xml")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<resource-agent name="x"><actions><action name="off"/></actions></resource-agent>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMetadata(b)
		if err != nil {
			if !errors.Is(err, ErrBadMetadata) {
				t.Fatalf("error %v does not wrap ErrBadMetadata", err)
			}
			return
		}
		// Accepted metadata must survive our own encoder: native agents
		// publish metadata through Marshal.
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal of accepted metadata: %v", err)
		}
		back, err := ParseMetadata(out)
		if err != nil {
			t.Fatalf("re-parse of marshalled metadata: %v\n%s", err, out)
		}
		if back.Name != m.Name || len(back.Parameters) != len(m.Parameters) || len(back.Actions) != len(m.Actions) {
			t.Fatalf("round trip changed metadata")
		}
	})
}
