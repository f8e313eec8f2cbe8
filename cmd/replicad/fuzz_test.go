package main

import (
	"os"
	"strings"
	"testing"
)

// FuzzLoadConfig feeds the daemon's configuration parser arbitrary YAML: it
// must never panic, must explain every refusal, and whatever it accepts
// must still pass Validate.
func FuzzLoadConfig(f *testing.F) {
	f.Add(sample)
	f.Add(fenceSample)
	f.Add(strings.NewReplacer("{{DIR}}", "/tmp/x", "{{PORT}}", "10809").Replace(demoConfig))
	if b, err := os.ReadFile("../../dist/replicad.yaml"); err == nil {
		f.Add(string(b))
	}
	for _, doc := range []string{
		"nbd:\n  max-payload: lots\n",
		"node: [1, 2\n",
		"volumes: 5\n",
		"volumes:\n  - {name: a, device: /a, size: 1GiB, replication: {protocol: a, peers: [{node: b, address: '127.0.0.1:1'}]}}\n",
		"fence: {devices: [{name: x}]}\n",
		"lvs: {}\n",
		"dlm: {listen: ':0'}\n",
	} {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		cfg, err := loadConfig("", strings.NewReader(doc), nil)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("refused with an empty error: %q", doc)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted, but Validate says: %v\n%q", err, doc)
		}
	})
}
