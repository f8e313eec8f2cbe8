package main

import (
	"bytes"
	"encoding/json"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/fence"
	"github.com/replicad/replicad/fence/fencetest"
	"github.com/replicad/replicad/internal/daemon"
)

// startFenceDaemon runs a daemon whose device "pdu" (a script agent)
// fences node-b and node-c on ports 2 and 3.
func startFenceDaemon(t *testing.T) (string, *fencetest.ScriptAgent) {
	t.Helper()
	dir := t.TempDir()
	a, err := fencetest.NewScriptAgent(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sock := startDaemonWith(t, dir, func(c *daemon.Config) {
		fc := fence.DefaultConfig()
		fc.HistoryPath = filepath.Join(dir, "fence", "history.log")
		d := fence.DefaultDevice()
		d.Name, d.Command, d.HostMap = "pdu", a.Path, []string{"node-b:2", "node-c:3"}
		d.Timeout, d.Retries, d.RetryInterval, d.DelayMax = 30*time.Second, 0, 0, 10*time.Millisecond
		d.VerifyTimeout, d.VerifyInterval = time.Second, 10*time.Millisecond
		fc.Devices = []fence.DeviceConfig{d}
		c.Fence = &fc
	})
	return sock, a
}

func runIn(stdin string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := executeIO(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func want(t *testing.T, what string, code int, out, errOut string, wantCode int, wants ...string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", what, code, wantCode, out, errOut)
		return
	}
	for _, w := range wants {
		if !strings.Contains(out+errOut, w) {
			t.Errorf("%s: output lacks %q\nstdout:\n%s\nstderr:\n%s", what, w, out, errOut)
		}
	}
}

func TestFenceCommands(t *testing.T) {
	sock, agent := startFenceDaemon(t)
	fc := func(args ...string) (int, string, string) {
		return run(append([]string{"--socket", sock, "fence"}, args...)...)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	origin := "repctl " + u.Username + "@n1"

	code, out, errOut := fc("list")
	want(t, "list", code, out, errOut, 0, "NAME", "AGENT", "TARGETS", "DELAY", "fence_replicad_test", "node-b:2,node-c:3", "30s", "0s+0..10ms", "fenceable nodes: node-b, node-c")
	code, out, _ = fc("list", "--json")
	var devs fence.DevicesResponse
	if code != 0 || json.Unmarshal([]byte(out), &devs) != nil || len(devs.Devices) != 1 || devs.Devices[0].Name != "pdu" {
		t.Errorf("list --json: %d %s", code, out)
	}

	code, out, errOut = fc("test", "pdu")
	want(t, "test", code, out, errOut, 0, "pdu: monitor ok; node-b on, node-c on")
	agent.Set("fail-status", "1")
	code, out, errOut = fc("test", "pdu")
	want(t, "test with a failing status", code, out, errOut, 1, "node-b (port 2): ", "simulated status failure", "pdu failed its test")
	code, out, errOut = fc("test", "nope")
	want(t, "test of an unknown device", code, out, errOut, 1, `no fence device "nope" (configured: pdu)`, "hint: see 'repctl fence list'")

	code, out, errOut = fc("node", "node-b", "--reason", "lost quorum")
	want(t, "node", code, out, errOut, 0, "off node-b: success (op 1, level 1, devices pdu", "asked by "+origin, "lost quorum",
		"verify-off  pdu  port 2  attempt 1", "off after 1 status check")
	code, out, errOut = fc("node", "node-b", "--action", "on", "--reason", "repaired", "--json")
	var res fence.Result
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Action != fence.ActionOn || res.State != fence.StateSuccess {
		t.Errorf("node --action on --json: %d %s %s", code, out, errOut)
	}
	if agent.Power("2") != "on" {
		t.Errorf("port 2 is %s after on", agent.Power("2"))
	}
	code, out, errOut = fc("node", "node-x", "--reason", "r")
	want(t, "node of an unknown target", code, out, errOut, 1, "no fence device can fence node-x (configured targets: node-b, node-c)", "hint: add it to a device's hosts or host-map")

	agent.Set("fail-off", "always")
	code, out, errOut = fc("node", "node-c", "--action", "reboot", "--reason", "hung")
	want(t, "a failing fence", code, out, errOut, 1, "reboot node-c: failed", "FAILED: ", "simulated off failure",
		"hint: node-c is NOT fenced", "repctl fence confirm node-c --reason")
	if !strings.Contains(out, "FAILED") || strings.Contains(errOut, "FAILED:") {
		t.Errorf("a failing fence: the operation goes to stdout, the error to stderr\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	code, out, _ = fc("node", "node-c", "--reason", "hung", "--json")
	if code != 1 || json.Unmarshal([]byte(out), &res) != nil || res.State != fence.StateFailed {
		t.Errorf("a failing fence with --json prints the operation: %d %s", code, out)
	}
	agent.Set("fail-off", "")

	// confirm asks, unless --yes.
	code, out, errOut = runIn("no\n", "--socket", sock, "fence", "confirm", "node-c", "--reason", "cords pulled")
	want(t, "confirm answered no", code, out, errOut, 1, "Is node-c powered off or disconnected?", "not confirmed: nothing recorded")
	code, out, errOut = runIn("", "--socket", sock, "fence", "confirm", "node-c", "--reason", "cords pulled")
	want(t, "confirm without an answer", code, out, errOut, 1, "not confirmed")
	code, out, errOut = runIn("yes\n", "--socket", sock, "fence", "confirm", "node-c", "--reason", "cords pulled")
	want(t, "confirm answered yes", code, out, errOut, 0, "node-c confirmed down by "+origin+" (op 5)")
	code, out, errOut = fc("confirm", "node-c", "--reason", "checked again", "--yes")
	want(t, "confirm --yes", code, out, errOut, 0, "confirmed down")

	code, out, errOut = fc("history")
	want(t, "history", code, out, errOut, 0, "ID", "STARTED", "TARGET", "ACTION", "STATE", "DEVICES", "COMPLETED", "REQUESTER", "REASON",
		"confirmed", "failed", "success", origin, "lost quorum", "cords pulled")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 7 || !strings.HasPrefix(lines[1], "6 ") || !strings.HasPrefix(lines[6], "1 ") {
		t.Errorf("history: want a header and 6 operations, newest first:\n%s", out)
	}
	code, out, _ = fc("history", "node-b", "--json")
	var h fence.HistoryResponse
	if code != 0 || json.Unmarshal([]byte(out), &h) != nil || len(h.Operations) != 2 || h.Operations[1].Requesters[0].Origin != origin {
		t.Errorf("history node-b --json: %d %s", code, out)
	}
	code, out, errOut = fc("history", "--limit", "1", "-v")
	want(t, "history --limit 1 -v", code, out, errOut, 0, "off node-c: confirmed (op 6", "checked again")
	code, out, errOut = fc("history", "--since", "1h", "node-b")
	want(t, "history --since 1h", code, out, errOut, 0, "lost quorum", "repaired")
	code, out, errOut = fc("history", "--since", "2000-01-01T00:00:00Z", "node-x")
	want(t, "history of a node without operations", code, out, errOut, 0, "no fence operations recorded")
}

func TestFenceUsageErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{
		{"fence"}, {"fence", "frob"}, {"fence", "node", "b"}, {"fence", "node", "b", "--reason", "x", "--action", "kill"},
		{"fence", "node"}, {"fence", "test"}, {"fence", "confirm", "b", "--yes"}, {"fence", "history", "a", "b"},
		{"fence", "history", "--since", "yesterday"}, {"fence", "history", "--limit", "-2"},
	} {
		code, _, errOut := run(append([]string{"--socket", sock}, args...)...)
		if code != 2 || !strings.Contains(errOut, "repctl --help") {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
	code, _, errOut := run("--socket", sock, "fence", "node", "b")
	if !strings.Contains(errOut, "--reason is required: say why b must be fenced") || code != 2 {
		t.Errorf("node without --reason: %d %q", code, errOut)
	}
	if code, _, errOut := run("--socket", sock, "fence", "list"); code != 3 || !strings.Contains(errOut, "not running") {
		t.Errorf("fence list without a daemon: %d %q", code, errOut)
	}
}

func TestFenceNotConfigured(t *testing.T) {
	sock := startDaemon(t)
	code, out, errOut := run("--socket", sock, "fence", "list")
	want(t, "fence list without a fence section", code, out, errOut, 1, "fencing is not configured on n1", "hint: add a fence: section")
	code, out, errOut = run("--socket", sock, "fence", "history")
	want(t, "fence history without a fence section", code, out, errOut, 1, "fencing is not configured")
}

// fence peer exits with DRBD's codes, and never with one DRBD would act on
// when something is wrong: 1 for a bad environment or no daemon, not 3.
func TestFencePeer(t *testing.T) {
	sock, agent := startFenceDaemon(t)
	t.Setenv("DRBD_RESOURCE", "r0")
	t.Setenv("DRBD_PEER_NODE_ID", "1")
	t.Setenv("DRBD_NODE_ID_1", "node-b")
	code, out, errOut := run("--socket", sock, "fence", "peer")
	want(t, "fence peer", code, out, errOut, 7, "fence-peer r0 on node-b: exit 7 (peer stonithed)")
	if agent.Power("2") != "on" || len(agent.PowerCalls()) != 2 {
		t.Errorf("fence-peer should reboot (fence.peer-action): calls %v", agent.PowerCalls())
	}
	t.Setenv("REPLICAD_FENCING", "resource-only")
	code, out, errOut = run("--socket", sock, "fence", "peer")
	want(t, "fence peer, resource-only", code, out, errOut, 5)
	t.Setenv("REPLICAD_FENCING", "")
	agent.Set("fail-off", "always")
	code, out, errOut = run("--socket", sock, "fence", "peer")
	want(t, "fence peer, fence fails", code, out, errOut, 1, "fencing node-b failed")
	code, out, errOut = run("--socket", filepath.Join(t.TempDir(), "none.sock"), "fence", "peer")
	want(t, "fence peer without a daemon", code, out, errOut, 1, "not running")
	t.Setenv("DRBD_RESOURCE", "")
	code, out, errOut = run("--socket", sock, "fence", "peer")
	want(t, "fence peer without a resource", code, out, errOut, 1, "REPLICAD_RESOURCE (or DRBD_RESOURCE) is not set")
}
