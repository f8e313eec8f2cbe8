package lvs

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/lvs/health"
	"github.com/replicad/replicad/lvs/model"
)

const exampleYAML = `
backend: auto
nftables-table: replicad_lvs
resync-interval: 30s
vips:
  - name: nfs
    address: 10.0.0.100/24
    interface: eth0
    arp-count: 5
    arp-interval: 500ms
services:
  - name: mysql
    address: 10.0.0.100:3306
    scheduler: wrr
    on-failure: quiesce
    sorry-server: 10.0.2.1:3306
    persistence:
      timeout: 300s
      prefix-length: 24
    check:
      type: mysql
      interval: 2s
      timeout: 1s
      rise: 2
      fall: 3
      user: monitor
      password: secret
    real-servers:
      - address: 10.0.1.1:3306
        weight: 3
      - address: 10.0.1.2
        weight: 0
      - address: 10.0.1.3:3306
        check:
          type: tcp
  - name: nfs
    address: 10.0.0.100:2049
    scheduler: sh
    check:
      type: nfs
    real-servers:
      - address: 10.0.1.1:2049
  - name: web
    fwmark: 7
    family: ipv6
    scheduler: rr
    forward: dr
    real-servers:
      - address: 2001:db8::11
  - name: dns
    protocol: udp
    address: "[2001:db8::100]:53"
    scheduler: random
    real-servers:
      - address: "[2001:db8::11]:53"
        forward: tunnel
        tunnel-type: gue
        tunnel-port: 6080
`

func TestParseExampleConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(exampleYAML))
	if err != nil {
		t.Fatal(err)
	}
	specs, problems := cfg.compile()
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	my := specs[0]
	if my.svc.Key.String() != "tcp/10.0.0.100:3306" || my.svc.Scheduler != model.WRR ||
		my.svc.Persistence != (model.Persistence{Timeout: 300 * time.Second, PrefixLen: 24}) {
		t.Fatalf("mysql service: %+v", my.svc)
	}
	want := []model.RealServer{
		{Addr: netip.MustParseAddrPort("10.0.1.1:3306"), Weight: 3, Forward: model.NAT},
		{Addr: netip.MustParseAddrPort("10.0.1.2:3306"), Weight: 0, Forward: model.NAT}, // port from the service
		{Addr: netip.MustParseAddrPort("10.0.1.3:3306"), Weight: 1, Forward: model.NAT}, // default weight 1
	}
	if !reflect.DeepEqual(my.svc.RealServers, want) {
		t.Fatalf("real servers %+v", my.svc.RealServers)
	}
	if c := my.checks[want[0].Addr]; c.cfg.Type != "mysql" || c.hcfg != (health.Config{Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3}) {
		t.Fatalf("service check: %+v", c)
	}
	if c := my.checks[want[2].Addr]; c.cfg.Type != "tcp" || c.hcfg.Interval != DefaultCheckInterval || c.target != want[2].Addr {
		t.Fatalf("per-server check override with defaults: %+v", c)
	}
	if my.policy.OnFailure != health.Quiesce || my.policy.Sorry == nil || my.policy.Sorry.Addr.String() != "10.0.2.1:3306" {
		t.Fatalf("policy %+v", my.policy)
	}
	if nfs := specs[1]; nfs.checks[nfs.svc.RealServers[0].Addr].cfg.NFSVersion != 4 {
		t.Fatalf("nfs check default version: %+v", nfs.checks)
	}
	web := specs[2]
	if web.svc.Key.String() != "fwmark/7/ipv6" || web.svc.RealServers[0].Addr.Port() != 0 || web.svc.RealServers[0].Forward != model.DR {
		t.Fatalf("fwmark service %+v", web.svc)
	}
	if dns := specs[3].svc; dns.RealServers[0].Tunnel != model.GUE || dns.RealServers[0].TunnelPort != 6080 || dns.Key.Protocol != model.UDP {
		t.Fatalf("dns %+v", dns)
	}
}

func TestConfigYAMLRoundTrip(t *testing.T) {
	cfg, err := ParseConfig([]byte(exampleYAML))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.EncodeYAML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(out)
	if err != nil {
		t.Fatalf("re-parse of saved config: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(cfg, back) {
		t.Fatalf("round trip changed the config:\n%s", out)
	}
	for _, want := range []string{"interval: 2s", "weight: 0", "timeout: 5m0s", "- name: mysql"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("saved YAML lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "label:") {
		t.Errorf("zero fields must be omitted:\n%s", out)
	}
}

func TestParseConfigRejectsUnknownKeysAndBadYAML(t *testing.T) {
	_, err := ParseConfig([]byte("services:\n  - name: a\n    adress: 10.0.0.1:80\n"))
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("misspelt key: %v", err)
	}
	if _, err := ParseConfig([]byte("services: [")); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad yaml: %v", err)
	}
}

// Config errors name their field: a typo next to a bad value is still
// reported (mapstructure alone stops at the struct with the bad value).
func TestDecodeConfigNamesEveryProblem(t *testing.T) {
	_, err := ParseConfig([]byte("services:\n - name: a\n   address: 10.0.0.1:80\n   bogus: 1\n   check: {typ: tcp}\n   real-servers: [{address: 10.0.0.2, weight: x}]\nfoo: 2\n"))
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("want a *ValidationError, got %v", err)
	}
	want := []string{
		"lvs.foo: unknown key",
		"lvs.services[0].bogus: unknown key",
		"lvs.services[0].check.typ: unknown key",
		"lvs.services[0].real-servers[0].weight: expected type 'int'",
	}
	_, err = ParseConfig([]byte("services:\n - name: a\n   address: 10.0.0.1:80\n   bogus: 1\n   scheduler: foo\n"))
	if err == nil || !strings.Contains(err.Error(), "lvs.services[0].bogus: unknown key") || !strings.Contains(err.Error(), `lvs.services[0].scheduler: "foo"`) {
		t.Errorf("an unknown key and an invalid value: %v; want both", err)
	}
	if len(ve.Problems) != len(want) {
		t.Fatalf("problems %q; want %d", ve.Problems, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(ve.Problems[i], w) {
			t.Errorf("problem %d: %q; want prefix %q", i, ve.Problems[i], w)
		}
	}
	if cfg, err := DecodeConfig(nil); err != nil || cfg.Backend != DefaultBackend {
		t.Errorf("an empty lvs section: %+v, %v; want the defaults", cfg, err)
	}
	var sc ServiceConfig
	if err := json.Unmarshal([]byte(`{"name":"a","check":{"typ":"tcp"}}`), &sc); err == nil || !strings.Contains(err.Error(), "check.typ: unknown key") {
		t.Errorf("JSON with a misspelt key: %v", err)
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// Validate reports every problem at once, each with its field name.
func TestValidateReportsEveryProblemWithFieldNames(t *testing.T) {
	w := func(i int) *int { return &i }
	cfg := DefaultConfig()
	cfg.Backend = "lvs"
	cfg.ResyncInterval = 0
	cfg.VIPs = []VIPConfig{{Name: "v", Address: "10.0.0.1", Interface: ""}}
	cfg.Services = []ServiceConfig{
		{
			Name: "a", Address: "10.0.0.1:80", Scheduler: "fastest", Forward: "teleport",
			Persistence: PersistenceConfig{Timeout: 1500 * time.Millisecond},
			OnFailure:   "panic",
			Check:       CheckConfig{Type: "http", Interval: time.Second, Timeout: 2 * time.Second, ExpectStatus: []int{99}, BodyMatch: "("},
			RealServers: []RealServerConfig{
				{Address: "10.0.1.1:80", Weight: w(70000)},
				{Address: "10.0.1.1:80"},
				{Address: "2001:db8::1"},
				{Address: "10.0.1.3:81", Forward: "dr"},
			},
		},
		{Name: "a", Address: "10.0.0.1:81", RealServers: []RealServerConfig{{Address: "10.0.1.1"}}},
		{Name: "b/c", FWMark: 3, Address: "10.0.0.1:82"},
		{Name: "d", Address: "10.0.0.1:0", RealServers: []RealServerConfig{{Address: "10.0.1.1"}}},
		{Name: "e", Address: "10.0.0.2:80", Check: CheckConfig{Type: "exec"}, RealServers: []RealServerConfig{{Address: "10.0.1.1:80"}}},
	}
	err := cfg.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate = %v", err)
	}
	for _, want := range []string{
		`lvs.backend: "lvs"; want one of auto, ipvs, nftables`,
		`lvs.resync-interval: 0s; want at least 1s`,
		`lvs.vips[0].address: "10.0.0.1"`,
		`lvs.vips[0].interface: ""`,
		`lvs.services[0].scheduler: "fastest"; want one of rr, wrr, lc`,
		`lvs.services[0].forward: "teleport"`,
		`lvs.services[0].persistence.timeout: 1.5s; want whole seconds`,
		`lvs.services[0].on-failure: "panic"`,
		`lvs.services[0].check.timeout: 2s; want more than 0 and at most the interval (1s)`,
		`lvs.services[0].check.expect-status: 99`,
		`lvs.services[0].check.body-match: "("`,
		`lvs.services[0].real-servers[0].weight: 70000; want 0..65535`,
		`lvs.services[0].real-servers[1].address: 10.0.1.1:80 listed twice`,
		`lvs.services[0].real-servers[2].address: 2001:db8::1 is ipv6 but the service is ipv4`,
		`lvs.services[0].real-servers[3].address: port 81 differs from the service port 80; dr forwarding`,
		`lvs.services[1].name: "a" used twice`,
		`lvs.services[2].name: "b/c"`,
		`lvs.services[2].address: set together with fwmark 3`,
		`lvs.services[2].real-servers: empty`,
		`lvs.services[3].address: port 0 (every port) needs persistence`,
		`lvs.services[4].check.command: empty`,
	} {
		found := false
		for _, p := range ve.Problems {
			if strings.HasPrefix(p, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("missing problem %q\nall problems:\n  %s", want, strings.Join(ve.Problems, "\n  "))
		}
	}
}

func TestValidateRejectsDuplicateServiceKeys(t *testing.T) {
	cfg := DefaultConfig()
	rs := []RealServerConfig{{Address: "10.0.1.1"}}
	cfg.Services = []ServiceConfig{
		{Name: "a", Address: "10.0.0.1:80", RealServers: rs},
		{Name: "b", Address: "10.0.0.1:80", RealServers: rs},
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `service tcp/10.0.0.1:80 is also defined by "a"`) {
		t.Fatalf("duplicate key: %v", err)
	}
}

// The control API carries config objects as JSON with the file's keys.
func TestConfigJSON(t *testing.T) {
	cfg, err := ParseConfig([]byte(exampleYAML))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(cfg.Services[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"name":"mysql"`, `"interval":"2s"`, `"real-servers":[`, `"weight":0`, `"prefix-length":24`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	var back ServiceConfig
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, cfg.Services[0]) {
		t.Fatalf("JSON round trip:\n%+v\n%+v", back, cfg.Services[0])
	}
	// A patch: keys present replace, others stay.
	patched := back
	if err := json.Unmarshal([]byte(`{"scheduler":"sh","check":{"type":"tcp"}}`), &patched); err != nil {
		t.Fatal(err)
	}
	if patched.Scheduler != "sh" || patched.Name != "mysql" || patched.Check.Type != "tcp" {
		t.Fatalf("patched %+v", patched)
	}
	var rs RealServerConfig
	if err := json.Unmarshal([]byte(`{"address":"10.0.1.9:3306","wieght":2}`), &rs); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("misspelt key in JSON: %v", err)
	}
	whole, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var cfg2 Config
	if err := json.Unmarshal(whole, &cfg2); err != nil || !reflect.DeepEqual(cfg2, cfg) {
		t.Fatalf("whole config JSON round trip: %v", err)
	}
}

// The example in docs/lvs.md must stay a valid configuration.
func TestDocsExampleParses(t *testing.T) {
	doc, err := os.ReadFile("../docs/lvs.md")
	if err != nil {
		t.Skipf("docs/lvs.md not found: %v", err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\nlvs:\n")
	if !ok {
		t.Fatal("docs/lvs.md has no ```yaml block starting with lvs:")
	}
	block, _, _ := strings.Cut(rest, "```")
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		lines = append(lines, strings.TrimPrefix(l, "  "))
	}
	cfg, err := ParseConfig([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("the documented example does not parse: %v", err)
	}
	if len(cfg.Services) != 3 || len(cfg.VIPs) != 1 {
		t.Fatalf("parsed %d services, %d VIPs", len(cfg.Services), len(cfg.VIPs))
	}
}
