package fence

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replicad/replicad/fence/agentproto"
)

// writeAgent writes a one-off shell agent.
func writeAgent(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fence_custom")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// New checks each exec device against its agent's metadata and reports
// every problem, naming the field.
func TestNewChecksDevicesAgainstAgentMetadata(t *testing.T) {
	r := newRig(t)
	r.device("typo", []string{"node-a"}, nil, func(d *DeviceConfig) {
		d.Params = map[string]string{"pasword": "x", "lanplus": "maybe", "power_wait": "soon"}
	})
	r.device("hostarg", []string{"node-b"}, nil, func(d *DeviceConfig) { d.HostArgument = "outlet" })
	noStatus := writeAgent(t, `cat <<'X'
<resource-agent name="fence_nostatus"><parameters><parameter name="port"><content type="string"/></parameter></parameters>
<actions><action name="off"/><action name="on"/></actions></resource-agent>
X
`)
	d := DefaultDevice()
	d.Name, d.Command, d.Hosts = "nostatus", noStatus, []string{"node-c"}
	garbage := DefaultDevice()
	garbage.Name, garbage.Command, garbage.Hosts = "garbage", writeAgent(t, "echo 'usage: fence_custom <node>'\n"), []string{"node-d"}
	failing := DefaultDevice()
	failing.Name, failing.Command, failing.Hosts = "failing", writeAgent(t, "echo 'cannot load module' >&2; exit 1\n"), []string{"node-e"}
	missing := DefaultDevice()
	missing.Name, missing.Command, missing.Hosts = "missing", "fence_does_not_exist", []string{"node-f"}
	r.cfg.Devices = append(r.cfg.Devices, d, garbage, failing, missing)

	_, err := New(context.Background(), r.cfg, Options{})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New = %v, want ErrInvalidConfig", err)
	}
	want := []string{
		`fence.devices[0] (typo).params.: lanplus: "maybe" is not a boolean`,
		`fence.devices[0] (typo).params.: pasword: agent fence_replicad_test has no parameter "pasword"`,
		`fence.devices[0] (typo).params.: power_wait: "soon" is not a number of seconds`,
		`fence.devices[1] (hostarg).host-argument: agent fence_replicad_test has no parameter "outlet" to carry the port`,
		`fence.devices[2] (nostatus).command: agent fence_nostatus lists no "status" action`,
		`fence.devices[3] (garbage).command: ` + garbage.Command + `: metadata action: fence_custom metadata: invalid fence agent metadata: expected element type <resource-agent>`,
		`fence.devices[4] (failing).command: ` + failing.Command + `: metadata action: fence agent failed: fence_custom metadata: exit 1 (generic error): cannot load module`,
		`fence.devices[5] (missing).command: fence_does_not_exist not found in /usr/sbin:/usr/local/sbin:/sbin:/usr/bin (is the fence-agents package installed?)`,
	}
	got := strings.Split(err.Error(), "\n")
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.Contains(g, w)
		}
		if !found {
			t.Errorf("missing problem %q in:\n%s", w, err)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(got), len(want), err)
	}
}

// A hung metadata call at startup is bounded by metadata-timeout.
func TestNewBoundsMetadataCall(t *testing.T) {
	r := newRig(t)
	d := DefaultDevice()
	d.Name, d.Command, d.Hosts = "hung", writeAgent(t, "exec sleep 1000\n"), []string{"node-a"}
	r.cfg.Devices = []DeviceConfig{d}
	r.cfg.MetadataTimeout = 1e9 // 1s: the minimum
	_, err := New(context.Background(), r.cfg, Options{})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "fence.devices[0] (hung).command") {
		t.Fatalf("New = %v, want a timeout naming the device", err)
	}
}

func TestExecAgentStdinProtocol(t *testing.T) {
	r := newRig(t)
	a := r.device("pdu", nil, []string{"node-a:4"}, func(d *DeviceConfig) {
		d.Params = map[string]string{"ip": "10.0.0.30", "username": "apc", "password": "p=w#1"}
		d.HostArgument = "plug"
	})
	f := r.start(Options{})
	if _, err := f.Fence(context.Background(), req("node-a", ActionOff)); err != nil {
		t.Fatal(err)
	}
	got, err := agentproto.ParseArgs([]byte(a.LastStdin()))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ip": "10.0.0.30", "username": "apc", "password": "p=w#1", "action": "status", "plug": "4"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("agent read %s=%q, want %q (stdin %q)", k, got[k], v, a.LastStdin())
		}
	}
	if _, ok := got["port"]; ok {
		t.Error("port sent although host-argument is plug")
	}
	// Configured parameters come first so that action and the port, sent
	// last, always win.
	lines := strings.Split(strings.TrimSpace(a.LastStdin()), "\n")
	if lines[len(lines)-2] != "action=status" || lines[len(lines)-1] != "plug=4" {
		t.Fatalf("stdin order %q", lines)
	}
}

func TestAgentMessagePicksTheExplanation(t *testing.T) {
	stderr := []byte(`/usr/sbin/fence_ipmilan:5: DeprecationWarning: 'pipes' is deprecated and slated for removal in Python 3.13
  from pipes import quote
2026-11-23 00:04:25,097 ERROR: Failed: Unable to obtain correct plug status or plug is not available


`)
	if got := agentMessage(stderr, nil); got != "Failed: Unable to obtain correct plug status or plug is not available" {
		t.Fatalf("agentMessage = %q", got)
	}
	if got := agentMessage([]byte("a\nb\nc\nd\n"), nil); got != "b; c; d" {
		t.Fatalf("agentMessage without error lines = %q", got)
	}
}

func TestIsSecret(t *testing.T) {
	for name, want := range map[string]bool{"password": true, "passwd": true, "hexadecimal_kg": true, "community": true,
		"password_script": false, "ip": false, "auth": false, "username": false, "api-key": true} {
		if isSecret(name) != want {
			t.Errorf("isSecret(%q) = %v", name, !want)
		}
	}
}
