package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/dlm/client"
	"github.com/replicad/replicad/dlm/engine"
	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/fence"
	"github.com/replicad/replicad/internal/control"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// withDLM adds a two-node cluster (this node "test", id 1, and node-b,
// id 2, which never runs) and the DLM with lockspace "ls" to cfg.
func withDLM(t *testing.T, cfg Config, dir string) Config {
	t.Helper()
	cfg.Cluster = ClusterConfig{Secret: "dlm-test-secret-0123456789", Nodes: []ClusterNode{
		{Name: "test", ID: 1, Address: freeAddr(t), DLMAddress: freeAddr(t)},
		{Name: "node-b", ID: 2, Address: freeAddr(t), DLMAddress: freeAddr(t)},
	}}
	cfg.Node.ID = 1
	cfg.DLM = DefaultDLM()
	cfg.DLM.Enabled, cfg.DLM.TwoNode = true, true
	cfg.DLM.Socket = filepath.Join(dir, "dlm.sock")
	cfg.DLM.HeartbeatInterval, cfg.DLM.DeadTimeout = 100*time.Millisecond, 500*time.Millisecond
	cfg.DLM.Lockspaces = []DLMLockspace{{Name: "ls"}}
	return cfg
}

func dlmInfo(t *testing.T, c *control.Client) control.DLM {
	t.Helper()
	var info control.DLM
	if err := c.Do(context.Background(), http.MethodGet, "/v1/dlm", nil, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

func nodeState(info control.DLM, name string) control.DLMNode {
	for _, n := range info.Nodes {
		if n.Name == name {
			return n
		}
	}
	return control.DLMNode{}
}

func granted(t *testing.T, l *client.Lock) {
	t.Helper()
	select {
	case c := <-l.Completions():
		if c.Result != locktable.ResultGranted {
			t.Fatalf("completion %+v; want granted", c)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lock not granted within 30s")
	}
}

// A successful `repctl fence node` reaches the DLM through its membership:
// node-b, never seen since startup (startup fencing), holds up the
// lockspace until it is fenced; then the waiting request is granted.
func TestDLMTakesFenceResults(t *testing.T) {
	dir := t.TempDir()
	cfg, agent := fenceConfig(t, dir)
	cfg = withDLM(t, cfg, dir)
	r := start(t, cfg)
	ctx := context.Background()
	info := dlmInfo(t, r.client)
	if b := nodeState(info, "node-b"); b.State != "unknown" || !b.NeedsFence || len(info.Lockspaces) != 1 || info.Lockspaces[0].State == engine.StateRunning {
		t.Fatalf("before node-b is fenced: %+v", info)
	}
	c, err := client.Dial(ctx, cfg.DLM.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := c.LockAsync(ctx, "ls", "r", locktable.EX, 0, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	var res fence.Result
	if err := r.client.Do(ctx, http.MethodPost, "/v1/fence/nodes/node-b/fence", fence.NodeRequest{Action: fence.ActionOff, Reason: "test"}, &res); err != nil {
		t.Fatal(err)
	}
	if agent.Power("2") != "off" {
		t.Fatal("node-b not switched off")
	}
	granted(t, l)
	info = dlmInfo(t, r.client)
	if b := nodeState(info, "node-b"); b.State != "fenced" || b.NeedsFence || info.Lockspaces[0].State != engine.StateRunning {
		t.Fatalf("after node-b was fenced: %+v", info)
	}
}

// The /v1/dlm endpoints of docs/dlm.md, without a fence section: the
// DLM's own fence confirmation, lockspaces, dumps, leaving, errors; and at
// shutdown local clients are disconnected.
func TestDLMEndpoints(t *testing.T) {
	dir := t.TempDir()
	cfg := withDLM(t, testConfig(dir), dir)
	cfg.Volumes = nil
	r := start(t, cfg)
	ctx := context.Background()
	do := func(method, path string, in, out any) error { return r.client.Do(ctx, method, path, in, out) }

	err := do(http.MethodPost, "/v1/fence/nodes/node-b/confirm", fence.ConfirmRequest{Reason: "x"}, nil)
	apiErr(t, err, http.StatusNotFound, CodeNotConfigured)
	apiErr(t, do(http.MethodPost, "/v1/dlm/fence-confirm", control.FenceConfirmRequest{Node: "node-c"}, nil), http.StatusNotFound, control.CodeUnknownNode)
	var dn control.DLMNode
	if err := do(http.MethodPost, "/v1/dlm/fence-confirm", control.FenceConfirmRequest{Node: "2"}, &dn); err != nil || dn.Name != "node-b" || dn.State != "fenced" {
		t.Fatalf("fence-confirm node-b by id: %+v %v", dn, err)
	}
	apiErr(t, do(http.MethodPost, "/v1/dlm/fence-confirm", control.FenceConfirmRequest{Node: "test"}, nil), http.StatusBadRequest, "")

	c, err := client.Dial(ctx, cfg.DLM.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Lock(ctx, "ls", "res", locktable.PR, 0, nil); err != nil {
		t.Fatal(err)
	}
	var dump engine.Dump
	if err := do(http.MethodGet, "/v1/dlm/lockspaces/ls/dump", nil, &dump); err != nil || len(dump.Resources) != 1 ||
		dump.Resources[0].Name != "res" || len(dump.Resources[0].Granted) != 1 || dump.Resources[0].Granted[0].Mode != "PR" {
		t.Fatalf("dump: %+v %v", dump, err)
	}

	var st engine.Status
	if err := do(http.MethodPost, "/v1/dlm/lockspaces", control.JoinRequest{Name: "second", LVBLen: 64}, &st); err != nil || st.Lockspace != "second" || st.LVBLen != 64 {
		t.Fatalf("join: %+v %v", st, err)
	}
	if err := do(http.MethodPost, "/v1/dlm/lockspaces", control.JoinRequest{Name: "second", LVBLen: 32}, nil); err == nil {
		t.Fatal("joined again with another LVB length")
	}
	if err := do(http.MethodPost, "/v1/dlm/lockspaces", control.JoinRequest{Name: "../x"}, nil); err == nil {
		t.Fatal("joined a lockspace with a bad name")
	}
	var all []engine.Status
	if err := do(http.MethodGet, "/v1/dlm/lockspaces", nil, &all); err != nil || len(all) != 2 || all[0].Lockspace != "ls" || all[1].Lockspace != "second" {
		t.Fatalf("lockspaces: %+v %v", all, err)
	}
	apiErr(t, do(http.MethodDelete, "/v1/dlm/lockspaces/ls", nil, nil), http.StatusConflict, control.CodeLockspaceBusy)
	if err := do(http.MethodDelete, "/v1/dlm/lockspaces/ls?force=9", nil, nil); err == nil {
		t.Fatal("force=9 accepted")
	}
	if err := do(http.MethodDelete, "/v1/dlm/lockspaces/second", nil, nil); err != nil {
		t.Fatal(err)
	}
	apiErr(t, do(http.MethodGet, "/v1/dlm/lockspaces/second", nil, nil), http.StatusNotFound, control.CodeNotJoined)

	r.stop()
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("a local client still connected after shutdown")
	}
}

func TestDLMNotConfigured(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	err := r.client.Do(context.Background(), http.MethodGet, "/v1/dlm", nil, nil)
	api := apiErr(t, err, http.StatusNotFound, control.CodeDLMNotConfigured)
	if !strings.Contains(api.Hint(), "dlm.enabled") {
		t.Fatalf("hint %q does not say how to enable the DLM", api.Hint())
	}
}

func TestValidateDLM(t *testing.T) {
	dir := t.TempDir()
	base := withDLM(t, testConfig(dir), dir)
	if err := base.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no cluster", func(c *Config) { c.Cluster = ClusterConfig{} }, "dlm.enabled: the DLM runs between cluster.nodes"},
		{"node id 0", func(c *Config) { c.Cluster.Nodes[1].ID = 0 }, "cluster.nodes[1].id: 0; the DLM numbers nodes from 1"},
		{"no dlm-address", func(c *Config) { c.Cluster.Nodes[1].DLMAddress = "" }, "cluster.nodes[1].dlm-address: required"},
		{"bad dlm-address", func(c *Config) { c.Cluster.Nodes[0].DLMAddress = "nowhere" }, `cluster.nodes[0].dlm-address: "nowhere": want HOST:PORT`},
		{"same as replication", func(c *Config) { c.Cluster.Nodes[0].DLMAddress = c.Cluster.Nodes[0].Address }, "give the DLM its own port"},
		{"listen", func(c *Config) { c.DLM.Listen = "unix:///x" }, "dlm.listen"},
		{"socket", func(c *Config) { c.DLM.Socket = "dlm.sock" }, "dlm.socket"},
		{"socket is control", func(c *Config) { c.DLM.Socket = c.Control.Socket }, "is also control.socket"},
		{"two-node", func(c *Config) {
			c.Cluster.Nodes = append(c.Cluster.Nodes, ClusterNode{Name: "c", ID: 3, Address: "127.0.0.1:1", DLMAddress: "127.0.0.1:2"})
		}, "dlm.two-node: set, but cluster.nodes has 3 nodes"},
		{"dead-timeout", func(c *Config) { c.DLM.DeadTimeout = c.DLM.HeartbeatInterval }, "dlm.dead-timeout"},
		{"lockspace name", func(c *Config) { c.DLM.Lockspaces[0].Name = "a/b" }, "dlm.lockspaces[0].name"},
		{"lockspace twice", func(c *Config) { c.DLM.Lockspaces = append(c.DLM.Lockspaces, DLMLockspace{Name: "ls"}) }, `dlm.lockspaces[1].name: "ls" is also dlm.lockspaces[0]`},
		{"lvb-len", func(c *Config) { c.DLM.Lockspaces[0].LVBLen = 48 }, "dlm.lockspaces[0].lvb-len: 48 B"},
		{"lockspaces but disabled", func(c *Config) { c.DLM.Enabled = false }, "dlm.lockspaces: set, but dlm.enabled is false"},
	} {
		cfg := base
		cfg.Cluster.Nodes = append([]ClusterNode(nil), base.Cluster.Nodes...)
		cfg.DLM.Lockspaces = append([]DLMLockspace(nil), base.DLM.Lockspaces...)
		tc.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
}

// A DLM peer port already taken stops the daemon with a clear error.
func TestDLMListenerInUse(t *testing.T) {
	dir := t.TempDir()
	cfg := withDLM(t, testConfig(dir), dir)
	l, err := net.Listen("tcp", cfg.Cluster.Nodes[0].DLMAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	err = d.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("dlm: peer listener on %s", cfg.Cluster.Nodes[0].DLMAddress)) {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run: %v", err)
	}
}
