package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/fence"
	"github.com/replicad/replicad/fence/agentproto"
	"github.com/replicad/replicad/fence/fencetest"
	"github.com/replicad/replicad/internal/control"
)

// fenceConfig is testConfig with a fence section: device "pdu" fences
// node-b and node-c (ports 2 and 3) through a script agent.
func fenceConfig(t *testing.T, dir string) (Config, *fencetest.ScriptAgent) {
	t.Helper()
	a, err := fencetest.NewScriptAgent(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fc := fence.DefaultConfig()
	fc.HistoryPath = filepath.Join(dir, "fence", "history.log")
	d := fence.DefaultDevice()
	d.Name, d.Command, d.HostMap = "pdu", a.Path, []string{"node-b:2", "node-c:3"}
	d.Timeout, d.Retries, d.RetryInterval = 30*time.Second, 0, 0
	d.VerifyTimeout, d.VerifyInterval = time.Second, 10*time.Millisecond
	fc.Devices = []fence.DeviceConfig{d}
	cfg := testConfig(dir)
	cfg.Volumes = nil
	cfg.Fence = &fc
	return cfg, a
}

func apiErr(t *testing.T, err error, status int, code string) *control.APIError {
	t.Helper()
	var api *control.APIError
	if !errors.As(err, &api) || api.Status != status || api.Body.Code != code {
		t.Fatalf("error %v (%#v); want HTTP %d code %q", err, api, status, code)
	}
	return api
}

func thisUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// The endpoints of docs/fencing.md against a live daemon, through the
// control socket.
func TestFenceEndpoints(t *testing.T) {
	dir := t.TempDir()
	cfg, agent := fenceConfig(t, dir)
	r := start(t, cfg)
	c, ctx := r.client, context.Background()

	var devs fence.DevicesResponse
	if err := c.Do(ctx, http.MethodGet, "/v1/fence/devices", nil, &devs); err != nil {
		t.Fatal(err)
	}
	if len(devs.Devices) != 1 || devs.Devices[0].Name != "pdu" || strings.Join(devs.Targets, ",") != "node-b,node-c" ||
		len(devs.Devices[0].Targets) != 2 || devs.Devices[0].Targets[1] != (fence.TargetPort{Target: "node-c", Port: "3"}) {
		t.Fatalf("devices %+v", devs)
	}
	var meta agentproto.Metadata
	if err := c.Do(ctx, http.MethodGet, "/v1/fence/devices/pdu/metadata", nil, &meta); err != nil || meta.Name != "fence_replicad_test" {
		t.Fatalf("metadata %+v %v", meta, err)
	}
	var tr fence.DeviceTest
	if err := c.Do(ctx, http.MethodPost, "/v1/fence/devices/pdu/test", nil, &tr); err != nil || !tr.OK || len(tr.Targets) != 2 || tr.Targets[0].State != "on" {
		t.Fatalf("test %+v %v", tr, err)
	}
	agent.Set("ports", "2,node-b\n3,node-c")
	var plugs PlugsResponse
	if err := c.Do(ctx, http.MethodPost, "/v1/fence/devices/pdu/list", nil, &plugs); err != nil || len(plugs.Plugs) != 2 || plugs.Plugs[1].Port != "3" {
		t.Fatalf("list %+v %v", plugs, err)
	}
	err := c.Do(ctx, http.MethodPost, "/v1/fence/devices/nope/test", nil, nil)
	if api := apiErr(t, err, 404, fence.CodeUnknownDevice); !strings.Contains(api.Body.Message, "configured: pdu") || !strings.Contains(api.Hint(), "repctl fence list") {
		t.Fatalf("unknown device: %+v", api.Body)
	}

	// Fence node-b: off through port 2, verified, recorded with who asked.
	var res fence.Result
	err = c.Do(ctx, http.MethodPost, "/v1/fence/nodes/node-b/fence", fence.NodeRequest{Action: fence.ActionOff, Reason: "lost quorum"}, &res)
	if err != nil || res.State != fence.StateSuccess || res.Level != 1 || strings.Join(res.Devices, ",") != "pdu" {
		t.Fatalf("fence node-b: %+v %v", res, err)
	}
	if agent.Power("2") != "off" || agent.Power("3") != "on" {
		t.Fatalf("power: port 2 %s, port 3 %s", agent.Power("2"), agent.Power("3"))
	}
	wantOrigin := "repctl " + thisUser(t) + "@test"
	if len(res.Requesters) != 1 || res.Requesters[0].Origin != wantOrigin || res.Requesters[0].Reason != "lost quorum" {
		t.Fatalf("requesters %+v; want origin %q from the socket's peer credentials", res.Requesters, wantOrigin)
	}
	var verified bool
	for _, s := range res.Steps {
		verified = verified || (s.Action == "verify-off" && s.Error == "")
	}
	if !verified {
		t.Fatalf("no successful verify-off step: %+v", res.Steps)
	}

	// Errors carry a code, the HTTP status and what to do next.
	err = c.Do(ctx, http.MethodPost, "/v1/fence/nodes/node-x/fence", fence.NodeRequest{Action: fence.ActionOff, Reason: "r"}, nil)
	if api := apiErr(t, err, 404, fence.CodeUnknownTarget); !strings.Contains(api.Body.Message, "configured targets: node-b, node-c") || !strings.Contains(api.Hint(), "host-map") {
		t.Fatalf("unknown target: %+v", api.Body)
	}
	err = c.Do(ctx, http.MethodPost, "/v1/fence/nodes/node-b/fence", fence.NodeRequest{Action: fence.ActionOff}, nil)
	if api := apiErr(t, err, 400, fence.CodeBadRequest); !strings.Contains(api.Body.Message, "reason is empty") {
		t.Fatalf("no reason: %+v", api.Body)
	}
	err = c.Do(ctx, http.MethodPost, "/v1/fence/nodes/node-b/fence", map[string]any{"action": "off", "reason": "r", "force": true}, nil)
	if !isStatus(err, 400) {
		t.Fatalf("unknown body field: %v", err)
	}

	// A failed fence: 502, the operation in "detail", and the way out.
	agent.Set("fail-off", "always")
	err = c.Do(ctx, http.MethodPost, "/v1/fence/nodes/node-c/fence", fence.NodeRequest{Action: fence.ActionReboot, Reason: "hung"}, nil)
	api := apiErr(t, err, 502, fence.CodeFenceFailed)
	var failed fence.Result
	if json.Unmarshal(api.Body.Detail, &failed) != nil || failed.State != fence.StateFailed || failed.Target != "node-c" || len(failed.Steps) == 0 || failed.Steps[0].Error == "" {
		t.Fatalf("failed operation detail %s", api.Body.Detail)
	}
	if !strings.Contains(api.Body.Message, "simulated off failure") || !strings.Contains(api.Hint(), "NOT fenced") || !strings.Contains(api.Hint(), "repctl fence confirm node-c") {
		t.Fatalf("fence_failed: %+v", api.Body)
	}

	// The operator's way out.
	if err := c.Do(ctx, http.MethodPost, "/v1/fence/nodes/node-c/confirm", fence.ConfirmRequest{}, nil); !isStatus(err, 400) {
		t.Fatalf("confirm without a reason: %v", err)
	}
	var conf fence.Result
	if err := c.Do(ctx, http.MethodPost, "/v1/fence/nodes/node-c/confirm", fence.ConfirmRequest{Reason: "cords pulled"}, &conf); err != nil ||
		conf.State != fence.StateConfirmed || conf.Requesters[0].Origin != wantOrigin {
		t.Fatalf("confirm: %+v %v", conf, err)
	}
	if op, ok := r.d.Fencer().LastFenced("node-c"); !ok || op.ID != conf.ID {
		t.Fatalf("LastFenced(node-c) = %+v %v; want the confirmation", op, ok)
	}

	// History, newest first, with the query parameters.
	var h fence.HistoryResponse
	if err := c.Do(ctx, http.MethodGet, "/v1/fence/history", nil, &h); err != nil || len(h.Operations) != 3 {
		t.Fatalf("history %+v %v", h, err)
	}
	if h.Operations[0].State != fence.StateConfirmed || h.Operations[1].State != fence.StateFailed || h.Operations[2].State != fence.StateSuccess {
		t.Fatalf("history order %+v", h.Operations)
	}
	if err := c.Do(ctx, http.MethodGet, "/v1/fence/history?target=node-b", nil, &h); err != nil || len(h.Operations) != 1 || h.Operations[0].Target != "node-b" {
		t.Fatalf("history of node-b %+v %v", h, err)
	}
	if err := c.Do(ctx, http.MethodGet, "/v1/fence/history?limit=1", nil, &h); err != nil || len(h.Operations) != 1 || h.Operations[0].ID != conf.ID {
		t.Fatalf("history limit 1 %+v %v", h, err)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if err := c.Do(ctx, http.MethodGet, "/v1/fence/history?since="+future, nil, &h); err != nil || h.Operations == nil || len(h.Operations) != 0 {
		t.Fatalf("history since the future %+v %v", h, err)
	}
	for _, q := range []string{"since=yesterday", "limit=-1", "limit=x"} {
		apiErr(t, c.Do(ctx, http.MethodGet, "/v1/fence/history?"+q, nil, nil), 400, fence.CodeBadRequest)
	}

	// fence-peer: resource-and-stonith fences the peer (exit 7) with the
	// configured peer action; a malformed body answers 1.
	agent.Set("fail-off", "")
	var pr fence.PeerResult
	if err := c.Do(ctx, http.MethodPost, "/v1/fence/peer", fence.PeerRequest{Resource: "r0", Peer: "node-b", Policy: fence.PolicyResourceAndStonith, PeerRole: fence.RoleUnknown}, &pr); err != nil || pr.Exit != fence.PeerStonithed {
		t.Fatalf("fence-peer %+v %v", pr, err)
	}
	if err := c.Do(ctx, http.MethodPost, "/v1/fence/peer", map[string]any{"resource": "r0", "peer": 7}, &pr); err != nil || pr.Exit != fence.PeerFenceFailed {
		t.Fatalf("fence-peer with a bad body %+v %v", pr, err)
	}
	peerOp := r.d.Fencer().History(fence.HistoryQuery{Target: "node-b", Limit: 1})[0]
	if peerOp.Action != fence.ActionReboot || peerOp.Requesters[0].Origin != "test/replication r0" {
		t.Fatalf("fence-peer operation %+v", peerOp)
	}

	// The history outlives the daemon.
	r.stop()
	if r.d.Fencer() != nil {
		t.Fatal("Fencer still set after Run returned")
	}
	r2 := start(t, cfg)
	if err := r2.client.Do(ctx, http.MethodGet, "/v1/fence/history", nil, &h); err != nil || len(h.Operations) != 4 || h.Operations[3].Requesters[0].Reason != "lost quorum" {
		t.Fatalf("history after restart %+v %v", h, err)
	}
}

// Without a fence section every fence endpoint says how to configure it,
// and fence-peer fails safe: 1 (I/O stays frozen) under
// resource-and-stonith, 5 under resource-only.
func TestFenceNotConfigured(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Volumes = nil
	r := start(t, cfg)
	c, ctx := r.client, context.Background()
	for _, e := range []struct{ method, path string }{
		{"GET", "/v1/fence/devices"}, {"POST", "/v1/fence/devices/x/test"}, {"POST", "/v1/fence/nodes/n/fence"},
		{"POST", "/v1/fence/nodes/n/confirm"}, {"GET", "/v1/fence/history"},
	} {
		err := c.Do(ctx, e.method, e.path, nil, nil)
		if api := apiErr(t, err, 404, CodeNotConfigured); !strings.Contains(api.Body.Message, "fencing is not configured on test") || !strings.Contains(api.Hint(), "fence: section") {
			t.Errorf("%s %s: %+v", e.method, e.path, api.Body)
		}
	}
	for policy, want := range map[string]fence.PeerExit{fence.PolicyResourceAndStonith: fence.PeerFenceFailed, fence.PolicyResourceOnly: fence.PeerUnreachable} {
		var pr fence.PeerResult
		err := c.Do(ctx, http.MethodPost, "/v1/fence/peer", fence.PeerRequest{Resource: "r0", Peer: "node-b", Policy: policy, PeerRole: fence.RoleUnknown}, &pr)
		if err != nil || pr.Exit != want {
			t.Errorf("fence-peer %s: %+v %v; want exit %d", policy, pr, err, want)
		}
	}
	if r.d.Fencer() != nil {
		t.Error("Fencer set without a fence section")
	}
}

// A fence section fence.New refuses (here: an agent that does not exist)
// stops the daemon at start, naming the device.
func TestFenceBadAgentStopsStart(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := fenceConfig(t, dir)
	cfg.Fence.Devices[0].Command = filepath.Join(dir, "fence_missing")
	d, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	err = d.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "fence.devices[0] (pdu)") {
		t.Fatalf("Run = %v; want an error naming fence.devices[0] (pdu)", err)
	}
}

// Validate reports fence problems with the daemon's, one per line.
func TestValidateIncludesFence(t *testing.T) {
	cfg, _ := fenceConfig(t, t.TempDir())
	cfg.Node.ID = 99
	cfg.Fence.HistoryPath = "relative"
	cfg.Fence.Devices[0].Retries = -1
	err := cfg.Validate()
	for _, want := range []string{"\n  node.id: 99", "\n  fence.history-path: \"relative\"", "\n  fence.devices[0] (pdu).retries"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v; want %q", err, want)
		}
	}
}

// A client that leaves does not stop the operation: Fence returns
// ErrStillRunning to the handler, the operation ends and is recorded.
func TestFenceOutlivesItsClient(t *testing.T) {
	dir := t.TempDir()
	cfg, agent := fenceConfig(t, dir)
	r := start(t, cfg)
	agent.Set("hang-off", "1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.client.Do(ctx, http.MethodPost, "/v1/fence/nodes/node-b/fence", fence.NodeRequest{Action: fence.ActionOff, Reason: "r"}, nil)
	}()
	waitUntil(t, "the agent hangs", func() bool { return agent.Exists("hanging-off") })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v", err)
	}
	ops := r.d.Fencer().History(fence.HistoryQuery{})
	if len(ops) != 1 || ops[0].State != fence.StatePending {
		t.Fatalf("history while the agent hangs: %+v", ops)
	}
	// Let the hung call end: kill its child; the agent then fails and the
	// operation ends (failed) on its own, with no client.
	pid, _ := strconv.Atoi(agent.ReadFile("child-off.pid"))
	killPID(t, pid)
	waitUntil(t, "the operation to end", func() bool {
		ops := r.d.Fencer().History(fence.HistoryQuery{})
		return len(ops) == 1 && ops[0].State == fence.StateFailed
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killPID kills a process this test started (the script agent's sleeping
// child).
func killPID(t *testing.T, pid int) {
	t.Helper()
	if pid <= 1 {
		t.Fatalf("bad pid %d", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// Two daemons must not share a fence history: the second one's start fails
// and the first keeps working.
func TestFenceHistoryHasOneDaemon(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := fenceConfig(t, dir)
	r := start(t, cfg)
	second := cfg
	second.Control.Socket = filepath.Join(t.TempDir(), "other.sock")
	second.NBD.Listen = []string{"tcp://127.0.0.1:0"}
	d, err := New(second, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second daemon on the same fence history: Run = %v", err)
	}
	var devs fence.DevicesResponse
	if err := r.client.Do(context.Background(), http.MethodGet, "/v1/fence/devices", nil, &devs); err != nil {
		t.Fatalf("the first daemon after the second one's attempt: %v", err)
	}
}
