package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/lvs"
)

const lvsSample = `
control: {socket: /tmp/replicad-test.sock}
lvs:
  backend: nftables
  resync-interval: 10s
  services:
    - name: web
      address: 10.0.0.1:80
      persistence: {timeout: 300s, prefix-length: 24}
      check: {type: tcp, interval: 2s}
      real-servers:
        - address: 10.0.1.1
          weight: 3
`

// The lvs section is optional, starts from the library's defaults and is
// read by the library's own rules.
func TestLoadConfigLVSSection(t *testing.T) {
	cfg, err := loadConfig("", strings.NewReader("control: {socket: /tmp/x.sock}\n"), nil)
	if err != nil || cfg.LVS != nil {
		t.Fatalf("no lvs section: %+v, %v; want it disabled", cfg.LVS, err)
	}
	cfg, err = loadConfig("", strings.NewReader("lvs: {}\n"), nil)
	if err != nil || cfg.LVS == nil || cfg.LVS.Backend != lvs.DefaultBackend || cfg.LVS.NFTablesTable != "replicad_lvs" {
		t.Fatalf("lvs: {}: %+v, %v; want the defaults", cfg.LVS, err)
	}
	cfg, err = loadConfig("", strings.NewReader(lvsSample), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.LVS
	if l == nil || l.Backend != "nftables" || l.ResyncInterval != 10*time.Second || l.NFTablesTable != "replicad_lvs" || len(l.Services) != 1 {
		t.Fatalf("lvs %+v", l)
	}
	s := l.Services[0]
	if s.Persistence.Timeout != 300*time.Second || s.Persistence.PrefixLength != 24 || s.Check.Interval != 2*time.Second || *s.RealServers[0].Weight != 3 {
		t.Fatalf("service %+v", s)
	}
}

// Problems in the lvs section are named by field, unknown keys included.
func TestLoadConfigLVSErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{strings.Replace(lvsSample, "weight: 3", "weight: 70000", 1), "lvs.services[0].real-servers[0].weight: 70000; want 0..65535"},
		{strings.Replace(lvsSample, "weight: 3", "wieght: 3", 1), "lvs.services[0].real-servers[0].wieght: unknown key"},
		{strings.Replace(lvsSample, "interval: 2s", "interval: soon", 1), "lvs.services[0].check.interval"},
		{lvsSample + "  bogus: 1\n", "lvs.bogus: unknown key"},
	} {
		_, err := loadConfig("", strings.NewReader(tc.doc), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "invalid configuration:") {
			t.Errorf("error %v; want %q", err, tc.want)
		}
	}
}

// The commented-out lvs example in dist/replicad.yaml loads once
// uncommented.
func TestShippedLVSExampleIsValid(t *testing.T) {
	data, err := os.ReadFile("../../dist/replicad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base, example, ok := strings.Cut(string(data), "\n# lvs:\n")
	if !ok {
		t.Fatal(`dist/replicad.yaml has no commented-out "# lvs:" example`)
	}
	doc := base + "\nlvs:\n"
	for _, l := range strings.Split(example, "\n") {
		if !strings.HasPrefix(l, "#") {
			break
		}
		doc += strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ") + "\n"
	}
	cfg, err := loadConfig("", strings.NewReader(doc), nil)
	if err != nil {
		t.Fatalf("the uncommented lvs example: %v\n%s", err, doc)
	}
	if cfg.LVS == nil || len(cfg.LVS.Services) != 2 || len(cfg.LVS.VIPs) != 1 {
		t.Fatalf("parsed %+v", cfg.LVS)
	}
}
