package topology

import (
	"reflect"
	"strings"
	"testing"
)

var devices = []Device{
	{Name: "ipmi-a", Hosts: []string{"node-a"}},
	{Name: "ipmi-b", Hosts: []string{"node-b"}},
	{Name: "pdu-1", Ports: map[string]string{"node-a": "1", "node-b": "2"}},
	{Name: "pdu-2", Ports: map[string]string{"node-a": "5", "node-b": "6"}},
	{Name: "both", Hosts: []string{"node-a"}, Ports: map[string]string{"node-a": "7"}},
}

func TestLevelsWithoutRulesOneLevelPerCapableDeviceInConfigOrder(t *testing.T) {
	tab := New(devices, nil)
	got := tab.Levels("node-b")
	want := []Level{{{"ipmi-b", "node-b"}}, {{"pdu-1", "2"}}, {{"pdu-2", "6"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Levels(node-b) = %v, want %v", got, want)
	}
	if got := tab.Levels("node-z"); got != nil {
		t.Fatalf("Levels(unknown) = %v, want nil", got)
	}
}

func TestHostMapPortWinsOverHostList(t *testing.T) {
	if p, _ := devices[4].Port("node-a"); p != "7" {
		t.Fatalf("port = %q, want the mapped 7", p)
	}
}

func TestLevelsFollowRulesInOrder(t *testing.T) {
	rules := []Rule{{Target: "node-a", Levels: [][]string{{"ipmi-a"}, {"pdu-1", "pdu-2"}}}}
	tab := New(devices, rules)
	got := tab.Levels("node-a")
	want := []Level{{{"ipmi-a", "node-a"}}, {{"pdu-1", "1"}, {"pdu-2", "5"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Levels(node-a) = %v, want %v", got, want)
	}
	// A target without a rule still gets the implicit levels.
	if got := tab.Levels("node-b"); len(got) != 3 {
		t.Fatalf("Levels(node-b) = %v, want 3 implicit levels", got)
	}
	if got, want := tab.Targets(), []string{"node-a", "node-b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Targets = %v, want %v", got, want)
	}
}

func TestCheckReportsEveryProblemWithItsPosition(t *testing.T) {
	rules := []Rule{
		{Target: "node-a", Levels: [][]string{{"ipmi-a", "nope"}, {}, {"pdu-1", "pdu-1"}, {"ipmi-b"}}},
		{Target: "node-a", Levels: [][]string{{"ipmi-a"}}},
		{Target: "", Levels: nil},
	}
	var got []string
	for _, p := range Check(devices, rules) {
		got = append(got, p.String())
	}
	want := []string{
		`rules[0].levels[0][1]: unknown device "nope"`,
		`rules[0].levels[1]: empty level`,
		`rules[0].levels[2][1]: device "pdu-1" is already in this level`,
		`rules[0].levels[3][0]: device "ipmi-b" cannot fence "node-a"`,
		`rules[1]: target "node-a" already has levels in rules[0]`,
		`rules[2]: empty target`,
		`rules[2]: target "" has no levels`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d problems:\n%s\nwant %d", len(got), strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}

func TestNewPanicsOnUncheckedRules(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted a rule naming an unknown device")
		}
	}()
	New(devices, []Rule{{Target: "node-a", Levels: [][]string{{"ghost"}}}})
}
