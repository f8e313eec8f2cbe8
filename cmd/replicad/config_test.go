package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

const sample = `
node:
  name: alpha
  id: 3
nbd:
  listen: ["tcp://127.0.0.1:10809", "unix:///run/replicad/nbd.sock"]
  max-payload: 16MiB
  handshake-timeout: 5s
volumes:
  - name: data
    device: /var/lib/replicad/data.img
    size: 10GiB
    al-extents: 6433
  - name: logs
    device: /dev/vdb
    meta: /var/lib/replicad/logs.md
    bitmap-granularity: 64KiB
`

func TestLoadConfig(t *testing.T) {
	cfg, err := loadConfig("", strings.NewReader(sample), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node.Name != "alpha" || cfg.Node.ID != 3 {
		t.Errorf("node %+v", cfg.Node)
	}
	if cfg.NBD.MaxPayload != 16<<20 || cfg.NBD.HandshakeTimeout != 5*time.Second || len(cfg.NBD.Listen) != 2 {
		t.Errorf("nbd %+v", cfg.NBD)
	}
	if cfg.NBD.MaxInflight != 256 || cfg.Control.Socket != "/run/replicad/control.sock" {
		t.Errorf("defaults not applied: %+v %+v", cfg.NBD, cfg.Control)
	}
	d, l := cfg.Volumes[0], cfg.Volumes[1]
	if d.Size != 10<<30 || d.ALExtents != 6433 || d.Meta != "internal" || d.BitmapGranularity != 4096 || d.MaxPeers != 2 {
		t.Errorf("volume data %+v", d)
	}
	if l.Meta != "/var/lib/replicad/logs.md" || l.BitmapGranularity != 64<<10 || l.ALExtents != 1237 {
		t.Errorf("volume logs %+v", l)
	}
}

// Environment overrides the file; flags override both.
func TestEnvAndFlagPrecedence(t *testing.T) {
	t.Setenv("REPLICAD_NODE_NAME", "from-env")
	t.Setenv("REPLICAD_NBD_MAX_INFLIGHT", "64")
	t.Setenv("REPLICAD_LOG_LEVEL", "debug")
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.String("log-level", "", "")
	fs.String("node-name", "", "")
	fs.Parse([]string{"--log-level", "warn"})
	cfg, err := loadConfig("", strings.NewReader(sample), fs)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node.Name != "from-env" {
		t.Errorf("node.name %q: environment should override the file", cfg.Node.Name)
	}
	if cfg.NBD.MaxInflight != 64 {
		t.Errorf("nbd.max-inflight %d: environment should set keys the file omits", cfg.NBD.MaxInflight)
	}
	if cfg.Log.Level != "warn" {
		t.Errorf("log.level %q: a flag should override the environment", cfg.Log.Level)
	}
}

// Broken configs get errors that name the field and the problem, all at once.
func TestConfigErrors(t *testing.T) {
	cases := []struct {
		doc  string
		want []string
	}{
		{"nbd:\n  max-payload: lots\n", []string{"max-payload", "invalid size"}},
		{"volumes:\n  - name: a\n    device: /x\n    sise: 1GiB\n", []string{"sise"}},
		{"nodes:\n  name: x\n", []string{"nodes"}},
		{"node: [1, 2\n", []string{"config"}},
		{`
node: {id: 40}
log: {level: loud, format: xml}
nbd:
  listen: ["udp://1.2.3.4:1", "tcp://nohost"]
  max-inflight: 0
  tls: {require: true}
volumes:
  - name: "bad name"
  - name: ok
    device: /d
    meta: /d
    al-extents: 5
  - name: ok
    device: /d
`, []string{
			"node.id: 40", "log.level", "log.format", `nbd.listen[0]`, "unsupported scheme", `nbd.listen[1]`,
			"max-inflight", "nbd.tls.require", "volumes[0] (bad name).name", "volumes[0] (bad name).device: required",
			"volumes[1] (ok).meta", "al-extents: 5", "volumes[2] (ok).name", "also the name of volumes[1]",
			"volumes[2] (ok).device: /d is also the device",
		}},
	}
	for i, c := range cases {
		_, err := loadConfig("", strings.NewReader(c.doc), nil)
		if err == nil {
			t.Errorf("case %d: config accepted", i)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("case %d: error does not mention %q:\n%v", i, w, err)
			}
		}
	}
}

func TestMissingConfigFile(t *testing.T) {
	_, err := loadConfig("/nonexistent/replicad.yaml", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "replicad demo") {
		t.Fatalf("missing file: %v", err)
	}
}

// The embedded demo configuration must load and validate.
func TestDemoConfigIsValid(t *testing.T) {
	doc := strings.NewReplacer("{{DIR}}", "/tmp/x", "{{PORT}}", "10809").Replace(demoConfig)
	cfg, err := loadConfig("", strings.NewReader(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Volumes) != 1 || cfg.Volumes[0].Size != 1<<30 {
		t.Fatalf("demo volumes %+v", cfg.Volumes)
	}
}

// The example configuration shipped in dist/ must load and validate.
func TestShippedConfigIsValid(t *testing.T) {
	cfg, err := loadConfig("../../dist/replicad.yaml", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Volumes) != 1 || cfg.Volumes[0].Size != 20<<30 || cfg.Volumes[0].ALExtents != 1237 {
		t.Fatalf("dist/replicad.yaml volumes: %+v", cfg.Volumes)
	}
}

func TestReplicationConfig(t *testing.T) {
	doc := `
node: {name: alpha, id: 0}
cluster:
  secret: "0123456789abcdef0123"
  nodes:
    - {name: alpha, id: 0, address: "10.0.0.1:7789"}
    - {name: beta, id: 1, address: "10.0.0.2:7789"}
volumes:
  - name: r0
    device: /dev/vdb
    replication:
      peers: [beta]
      protocol: a
      after-sb-0pri: discard-zero-changes
      resync-rate: 200MiB
`
	cfg, err := loadConfig("", strings.NewReader(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Volumes[0].Replication
	if r.Protocol != "A" || r.After0Pri != "discard-zero-changes" || r.After1Pri != "disconnect" || r.ResyncRate != 200<<20 || r.PingInterval == 0 {
		t.Fatalf("replication %+v", r)
	}
	bad := strings.NewReplacer("peers: [beta]", "peers: [gamma, alpha]", "protocol: a", "protocol: D", "id: 0, address", "id: 0, address").Replace(doc)
	bad = strings.Replace(bad, `secret: "0123456789abcdef0123"`, `secret: short`, 1)
	_, err = loadConfig("", strings.NewReader(bad), nil)
	for _, want := range []string{`peers[0]: "gamma" is not in cluster.nodes`, `peers[1]: "alpha" is this node`, `protocol: "D"`, "cluster.secret: 5 bytes"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

const fenceSample = `
node: {name: node-a}
fence:
  history-path: /var/lib/replicad/fence/history.log
  priority-delay: 15s
  devices:
    - name: ipmi-b
      command: fence_ipmilan
      params: {ip: 10.0.0.12, username: admin, password: secret, lanplus: 1}
      hosts: [node-b]
      delay-max: 5s
    - name: pdu-1
      command: fence_apc_snmp
      host-map: ["node-a:1", "node-b:2"]
      timeout: 20s
  topology:
    - target: node-b
      levels: [[ipmi-b], [pdu-1]]
`

// The fence section goes through fence.Decode: each device starts from
// fence.DefaultDevice, and a file without the section leaves fencing off.
func TestLoadFenceSection(t *testing.T) {
	cfg, err := loadConfig("", strings.NewReader(fenceSample), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Fence
	if f == nil || f.PriorityDelay != 15*time.Second || len(f.Devices) != 2 || len(f.Topology) != 1 {
		t.Fatalf("fence %+v", f)
	}
	b, p := f.Devices[0], f.Devices[1]
	if b.Params["lanplus"] != "1" || b.DelayMax != 5*time.Second || b.Timeout != 60*time.Second || b.Retries != 2 || b.Agent != "exec" {
		t.Errorf("ipmi-b did not get its values and the device defaults: %+v", b)
	}
	if p.Timeout != 20*time.Second || p.VerifyTimeout != 30*time.Second || p.HostMap[1] != "node-b:2" {
		t.Errorf("pdu-1 %+v", p)
	}
	for _, doc := range []string{sample, sample + "fence:\n", sample + "fence: {}\n"} {
		cfg, err := loadConfig("", strings.NewReader(doc), nil)
		if err != nil || cfg.Fence != nil {
			t.Errorf("without fence devices: fence %+v, err %v; want fencing not configured", cfg.Fence, err)
		}
	}
	t.Setenv("REPLICAD_FENCE_PRIORITY_DELAY", "3s")
	if cfg, err := loadConfig("", strings.NewReader(fenceSample), nil); err != nil || cfg.Fence.PriorityDelay != 3*time.Second {
		t.Errorf("environment over a fence key the file sets: %+v %v", cfg.Fence, err)
	}
}

// Fence problems are reported like the rest, naming fence.… fields:
// unknown keys, durations without units, and Validate's findings.
func TestFenceConfigErrors(t *testing.T) {
	cases := []struct {
		doc  string
		want []string
	}{
		{"fence:\n  devices:\n    - name: a\n      comand: x\n      timeout: 60\n  bogus: 1\n", []string{
			"invalid configuration:\n  fence.",
			"fence.devices[0] (a).timeout: 60 has no unit",
			"fence.devices[0] (a): unknown key(s) comand",
			"fence: unknown key(s) bogus",
		}},
		{"node: {id: 40}\nfence:\n  history-path: rel\n  peer-action: explode\n  devices:\n    - name: x\n      agent: foo\n", []string{
			"node.id: 40",
			`fence.history-path: "rel"`,
			`fence.peer-action: "explode"`,
			`fence.devices[0] (x).agent: unknown agent "foo"`,
			"fence.devices[0] (x).hosts",
		}},
		{"fence: [1, 2]\n", []string{"fence: want a mapping"}},
	}
	for i, c := range cases {
		_, err := loadConfig("", strings.NewReader(c.doc), nil)
		if err == nil {
			t.Errorf("case %d: config accepted", i)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("case %d: error does not mention %q:\n%v", i, w, err)
			}
		}
	}
}

// The commented-out fence example in dist/replicad.yaml must load and
// validate once uncommented.
func TestShippedFenceExampleIsValid(t *testing.T) {
	b, err := os.ReadFile("../../dist/replicad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, rest, ok := strings.Cut(string(b), "# fence:\n")
	if !ok {
		t.Fatal("dist/replicad.yaml has no commented-out fence section")
	}
	doc += "fence:\n"
	for _, l := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(l, "#") {
			break
		}
		doc += strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ") + "\n"
	}
	cfg, err := loadConfig("", strings.NewReader(doc), nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	if cfg.Fence == nil || len(cfg.Fence.Devices) != 1 || cfg.Fence.Devices[0].Params["lanplus"] != "1" || cfg.Fence.Devices[0].DelayMax != 5*time.Second {
		t.Fatalf("fence example: %+v", cfg.Fence)
	}
}

// The commented-out cluster and DLM example in dist/replicad.yaml must load
// and validate once uncommented.
func TestShippedDLMExampleIsValid(t *testing.T) {
	b, err := os.ReadFile("../../dist/replicad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, rest, ok := strings.Cut(string(b), "# cluster:\n")
	if !ok {
		t.Fatal("dist/replicad.yaml has no commented-out cluster section")
	}
	doc += "cluster:\n"
	for _, l := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(l, "#") {
			break
		}
		doc += strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ") + "\n"
	}
	cfg, err := loadConfig("", strings.NewReader(doc), nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	d := cfg.DLM
	if !d.Enabled || !d.TwoNode || d.DeadTimeout != 3*time.Second || len(d.Lockspaces) != 1 || d.Lockspaces[0].LVBLen != 32 ||
		cfg.Cluster.Nodes[1].DLMAddress != "10.0.0.2:7790" {
		t.Fatalf("dlm example: %+v %+v", d, cfg.Cluster)
	}
}

func TestDLMConfigErrors(t *testing.T) {
	base := `
node: {name: alpha, id: 1}
cluster:
  secret: "0123456789abcdef0123"
  nodes:
    - {name: alpha, id: 1, address: "127.0.0.1:7789", dlm-address: "127.0.0.1:7790"}
`
	for _, tc := range []struct{ doc, want string }{
		{base + "dlm: {enabled: true, bogus: 1}\n", "bogus"},
		{base + "dlm: {enabled: true, dead-timeout: 3}\n", "dlm.dead-timeout"},
		{base + "dlm: {enabled: true, lockspaces: [{name: x, lvb: 32}]}\n", "lvb"},
		{strings.Replace(base, `, dlm-address: "127.0.0.1:7790"`, "", 1) + "dlm: {enabled: true}\n", "cluster.nodes[0].dlm-address: required"},
	} {
		_, err := loadConfig("", strings.NewReader(tc.doc), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.doc, err, tc.want)
		}
	}
	t.Setenv("REPLICAD_DLM_ENABLED", "true")
	cfg, err := loadConfig("", strings.NewReader(base), nil)
	if err != nil || !cfg.DLM.Enabled || cfg.DLM.Socket != "/run/replicad/dlm.sock" {
		t.Fatalf("dlm from the environment: %+v %v", cfg.DLM, err)
	}
}
