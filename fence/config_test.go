package fence

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// exampleYAML is the example of docs/fencing.md; keep them in sync.
const exampleYAML = `
history-path: /var/lib/replicad/fence/history.log
priority-delay: 15s
peer-action: reboot
devices:
  - name: ipmi-a
    agent: exec
    command: fence_ipmilan
    params:
      ip: 10.0.0.11
      username: admin
      password: secret
      lanplus: 1
    hosts: [node-a]
    delay-max: 5s
  - name: ipmi-b
    agent: exec
    command: fence_ipmilan
    params: {ip: 10.0.0.12, username: admin, password: secret, lanplus: 1}
    hosts: [node-b]
  - name: bmc-c
    agent: redfish
    redfish:
      address: https://10.0.0.13
      username: root
      password-file: /etc/replicad/bmc-c.password
      ca-file: /etc/replicad/bmc-ca.pem
    hosts: [node-c]
  - name: pdu-1
    command: fence_apc_snmp
    params: {ip: 10.0.0.30, community: private}
    host-map: ["node-a:1", "node-b:2", "node-c:3"]
    timeout: 20s
  - name: pdu-2
    command: fence_apc_snmp
    params: {ip: 10.0.0.31, community: private}
    host-map: ["node-a:1", "node-b:2", "node-c:3"]
    timeout: 20s
topology:
  - target: node-a
    levels:
      - [ipmi-a]
      - [pdu-1, pdu-2]
  - target: node-b
    levels:
      - [ipmi-b]
      - [pdu-1, pdu-2]
`

func TestExampleConfigDecodesAndValidates(t *testing.T) {
	c, err := ParseYAML([]byte(exampleYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Devices) != 5 || c.PriorityDelay != 15*time.Second {
		t.Fatalf("decoded %+v", c)
	}
	a := c.Devices[0]
	if a.Params["lanplus"] != "1" || a.DelayMax != 5*time.Second {
		t.Fatalf("device 0 = %+v", a)
	}
	// Fields not written take the device defaults.
	def := DefaultDevice()
	if a.Timeout != def.Timeout || a.Retries != def.Retries || a.VerifyTimeout != def.VerifyTimeout || a.HostArgument != "port" {
		t.Fatalf("device 0 did not get defaults: %+v", a)
	}
	if c.Devices[3].Agent != AgentExec || c.Devices[3].Timeout != 20*time.Second {
		t.Fatalf("device 3 = %+v", c.Devices[3])
	}
	if c.Devices[2].Redfish.CAFile != "/etc/replicad/bmc-ca.pem" {
		t.Fatalf("redfish = %+v", c.Devices[2].Redfish)
	}
}

func TestDecodeRejectsUnknownKeysAndUnitlessDurations(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"devices:\n  - name: a\n    agnet: exec\n", "fence.devices[0] (a): unknown key(s) agnet"},
		{"priority-delay: 15\n", "fence.priority-delay: 15 has no unit"},
		{"devices:\n  - name: a\n    timeout: soon\n", `fence.devices[0] (a).timeout: "soon" is not a duration`},
		{"histroy-path: /x\n", "fence: unknown key(s) histroy-path"},
		{"devices: [1, 2]\n", "devices[0]"},
		{"- a\n- b\n", "YAML"},
	} {
		_, err := ParseYAML([]byte(c.yaml))
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseYAML(%q) = %v, want ErrInvalidConfig mentioning %q", c.yaml, err, c.want)
		}
	}
}

// Decoding reports every problem at once, each on its own line naming the
// field as Validate does, so the daemon's error names fence.devices[N].
func TestDecodeReportsEveryProblemWithItsField(t *testing.T) {
	_, err := ParseYAML([]byte("devices:\n  - name: a\n    comand: x\n    timeout: 60\n  - retries: lots\nbogus: 1\n"))
	want := []string{
		"fence.devices[0] (a).timeout: 60 has no unit",
		"fence.devices[0] (a): unknown key(s) comand",
		"fence.devices[1].retries: ",
		"fence: unknown key(s) bogus",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%v", w, err)
		}
	}
}

func TestValidateReportsEveryProblemWithItsField(t *testing.T) {
	c := DefaultConfig()
	c.HistoryPath = "history.log"
	c.PeerAction = "poweroff"
	d0 := DefaultDevice()
	d0.Name, d0.Command, d0.Hosts = "ipmi-a", "fence_ipmilan", []string{"node-a"}
	d0.Params = map[string]string{"port": "3", "password": "a\nb"}
	d1 := DefaultDevice()
	d1.Name, d1.Agent, d1.Hosts = "x", "foo", []string{"node-b"}
	d2 := DefaultDevice()
	d2.Name, d2.Agent = "ipmi-a", AgentRedfish
	d2.Redfish = RedfishConfig{Address: "http://bmc", CAFile: "/ca.pem", Insecure: true}
	d2.HostMap = []string{"node-c", "node-a:1"}
	d2.VerifyInterval = time.Minute
	d3 := DefaultDevice()
	d3.Name, d3.Command, d3.Hosts, d3.Timeout, d3.Retries = "pdu", "fence_apc", []string{"node-a", "node-a"}, 0, -1
	c.Devices = []DeviceConfig{d0, d1, d2, d3}
	c.Topology = []TargetLevels{{Target: "node-a", Levels: [][]string{{"pdu", "nope"}, {}}}, {Target: "node-b", Levels: [][]string{{"pdu"}}}}
	err := c.Validate()
	want := []string{
		`fence.history-path: "history.log"; want an absolute file path`,
		`fence.peer-action: "poweroff"; want off or reboot`,
		`fence.devices[0] (ipmi-a).params.password: fence agent argument cannot be encoded: value contains a newline or NUL`,
		`fence.devices[0] (ipmi-a).params.port: set by replicad for each call`,
		`fence.devices[1] (x).agent: unknown agent "foo" (want exec or redfish)`,
		`fence.devices[2] (ipmi-a).redfish.address: "http://bmc"; want an https:// URL`,
		`fence.devices[2] (ipmi-a).redfish.username: empty`,
		`fence.devices[2] (ipmi-a).redfish.password: empty; set password or password-file`,
		`fence.devices[2] (ipmi-a).redfish.insecure: set together with ca-file`,
		`fence.devices[2] (ipmi-a).host-map[0]: "node-c"; want node:port`,
		`fence.devices[2] (ipmi-a).verify-interval: 1m0s; want 10ms..verify-timeout (30s)`,
		`fence.devices[2] (ipmi-a).name: "ipmi-a" already names devices[0]`,
		`fence.devices[3] (pdu).hosts[1]: "node-a" listed twice`,
		`fence.devices[3] (pdu).timeout: 0s; want 1s..10m`,
		`fence.devices[3] (pdu).retries: -1; want 0..10`,
		`fence.topology[0].levels[0][1]: unknown device "nope"`,
		`fence.topology[0].levels[1]: empty level`,
		`fence.topology[1].levels[0][0]: device "pdu" cannot fence "node-b"`,
	}
	if err == nil {
		t.Fatal("Validate accepted a broken config")
	}
	got := strings.Split(err.Error(), "\n")
	for _, w := range want {
		found := false
		for _, g := range got {
			if strings.Contains(g, w) {
				found = true
			}
		}
		if !found {
			t.Errorf("missing problem %q", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(got), len(want), err)
	}
	if !errors.Is(err, ErrInvalidConfig) {
		t.Error("Validate error does not wrap ErrInvalidConfig")
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseConfig feeds arbitrary YAML to the decoder. Whatever decodes
// and validates must be usable: the topology builds, and every target's
// plan for every action validates.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("devices:\n  - {name: p, command: x, host-map: [\"a:1\"], delay-max: 1s}\n  - name: r\n    agent: redfish\n    redfish: {address: \"https://h\", username: u, password: p}\n    hosts: [a]\ntopology:\n  - {target: a, levels: [[p, r]]}\n"))
	f.Add([]byte("devices:\n  - name: a\n    command: /bin/true\n    hosts: [n]\n"))
	f.Add([]byte("topology:\n  - target: n\n    levels: [[a]]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseYAML(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("ParseYAML error %v does not wrap ErrInvalidConfig", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate error %v does not wrap ErrInvalidConfig", err)
			}
			return
		}
		devs := map[string]DeviceConfig{}
		for _, d := range c.Devices {
			devs[d.Name] = d
		}
		tab := buildTopology(c)
		for _, target := range tab.Targets() {
			levels := tab.Levels(target)
			if len(levels) == 0 {
				t.Fatalf("target %s listed but has no levels", target)
			}
			for _, a := range []Action{ActionOff, ActionOn, ActionReboot} {
				s := specFor(c.PriorityDelay, devs, levels, Request{Target: target, Action: a, TargetHoldsPrimary: true}, func() uint64 { return ^uint64(0) })
				if err := s.Validate(); err != nil {
					t.Fatalf("valid config gives invalid plan for %s %s: %v", a, target, err)
				}
			}
		}
	})
}
