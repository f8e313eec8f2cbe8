package daemon

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/lvs"
	"github.com/replicad/replicad/lvs/lvstest"
	"github.com/replicad/replicad/lvs/model"
)

func lvsTestConfig(t *testing.T) Config {
	cfg := testConfig(t.TempDir())
	cfg.Volumes = nil
	lc := lvs.DefaultConfig()
	lc.Backend = "nftables"
	lc.VIPs = []lvs.VIPConfig{
		{Name: "loop", Address: "127.0.0.1/8", Interface: "lo"},
		{Name: "gone", Address: "10.77.0.1/24", Interface: "rpdlw-none0"},
	}
	lc.Services = []lvs.ServiceConfig{{Name: "web", Address: "10.0.0.1:80", Scheduler: "rr",
		RealServers: []lvs.RealServerConfig{{Address: "10.0.1.1"}, {Address: "10.0.1.2:8080"}}}}
	cfg.LVS = &lc
	return cfg
}

func startLVSDaemon(t *testing.T) (*running, *lvstest.MemBackend) {
	t.Helper()
	b := lvstest.NewMemBackend(model.BackendNFTables)
	return start(t, lvsTestConfig(t), func(o *Options) { o.LVSBackend = b }), b
}

func lvsStatus(t *testing.T, c *control.Client) control.LVSStatus {
	t.Helper()
	var st control.LVSStatus
	if err := c.Do(context.Background(), http.MethodGet, "/v1/lvs", nil, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// apiError returns err's status and message, failing unless it is one.
func apiError(t *testing.T, err error) (int, string) {
	t.Helper()
	var api *control.APIError
	if !errors.As(err, &api) {
		t.Fatalf("want an API error, got %v", err)
	}
	return api.Status, api.Body.Message + " hint: " + api.Hint()
}

func kernelWeight(t *testing.T, b *lvstest.MemBackend, key, rs string) (uint32, bool) {
	t.Helper()
	o, ok := b.Service(mustKey(t, key))
	if !ok {
		return 0, false
	}
	for _, r := range o.RealServers {
		if r.Addr == netip.MustParseAddrPort(rs) {
			return r.Weight, true
		}
	}
	return 0, false
}

func mustKey(t *testing.T, s string) model.Key {
	t.Helper()
	k, err := model.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The lvs section drives the manager from the start: the configured
// service is in the table, and the status shows weights, health, counters.
func TestLVSStartsFromTheConfigAndReports(t *testing.T) {
	r, b := startLVSDaemon(t)
	if w, ok := kernelWeight(t, b, "tcp/10.0.0.1:80", "10.0.1.2:8080"); !ok || w != 1 {
		t.Fatalf("configured real server in the table: weight %d, present %v", w, ok)
	}
	b.SetStats(mustKey(t, "tcp/10.0.0.1:80"), model.Stats{Connections: 9}, map[netip.AddrPort]model.Stats{netip.MustParseAddrPort("10.0.1.1:80"): {Connections: 5, ActiveConns: 2}})
	st := lvsStatus(t, r.client)
	if st.Backend != "nftables" || len(st.Services) != 1 || st.DiffersFromConfigFile {
		t.Fatalf("status %+v", st)
	}
	s := st.Services[0]
	if s.Name != "web" || s.Key != "tcp/10.0.0.1:80" || s.Stats.Connections != 9 || len(s.RealServers) != 2 {
		t.Fatalf("service %+v", s)
	}
	rs := s.RealServers[0]
	if rs.Address != "10.0.1.1:80" || rs.Weight != 1 || rs.KernelWeight == nil || *rs.KernelWeight != 1 || rs.Health != "unchecked" || rs.Stats.Connections != 5 || rs.Stats.ActiveConns != 2 {
		t.Fatalf("real server %+v", rs)
	}
	r.stop()
	if !b.Closed() {
		t.Fatal("shutdown did not close the backend")
	}
	if _, ok := b.Service(mustKey(t, "tcp/10.0.0.1:80")); !ok {
		t.Fatal("shutdown removed the service from the table; it must stay (non-disruptive restart)")
	}
}

// Runtime edits through the control API reach the table at once, wrong
// ones change nothing and say why, and the status says the running
// configuration no longer matches the file.
func TestLVSRuntimeEdits(t *testing.T) {
	r, b := startLVSDaemon(t)
	ctx, c := context.Background(), r.client
	var sc lvs.ServiceConfig
	add := lvs.ServiceConfig{Name: "db", Address: "10.0.0.1:3306", Scheduler: "sh", RealServers: []lvs.RealServerConfig{{Address: "10.0.1.1"}}}
	if err := c.Do(ctx, http.MethodPost, "/v1/lvs/services", add, &sc); err != nil {
		t.Fatal(err)
	}
	if sc.Name != "db" || sc.Scheduler != "sh" {
		t.Fatalf("add answered %+v", sc)
	}
	if _, ok := kernelWeight(t, b, "tcp/10.0.0.1:3306", "10.0.1.1:3306"); !ok {
		t.Fatal("added service not in the table")
	}
	if !lvsStatus(t, c).DiffersFromConfigFile {
		t.Fatal("after an edit the status must say the config file differs")
	}

	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		want               string
	}{
		{"duplicate", http.MethodPost, "/v1/lvs/services", add, http.StatusConflict, "edit-service"},
		{"invalid weight", http.MethodPost, "/v1/lvs/services/db/real-servers", map[string]any{"address": "10.0.1.9", "weight": 70000}, http.StatusBadRequest, "lvs.services[1].real-servers[1].weight: 70000"},
		{"capability", http.MethodPut, "/v1/lvs/services/db", lvs.ServiceConfig{Name: "db", Address: "10.0.0.1:3306", Scheduler: "lc", RealServers: []lvs.RealServerConfig{{Address: "10.0.1.1"}}}, http.StatusBadRequest, "supported by: ipvs"},
		{"unknown key", http.MethodPost, "/v1/lvs/services", map[string]any{"name": "x", "adress": "10.0.0.1:1"}, http.StatusBadRequest, "adress: unknown key"},
		{"no such service", http.MethodDelete, "/v1/lvs/services/nope", nil, http.StatusNotFound, "repctl lvs list"},
		{"no such real server", http.MethodDelete, "/v1/lvs/services/db/real-servers/10.0.1.7", nil, http.StatusNotFound, "10.0.1.7"},
	} {
		status, msg := apiError(t, c.Do(ctx, tc.method, tc.path, tc.body, nil))
		if status != tc.status || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %d %q; want %d and %q", tc.name, status, msg, tc.status, tc.want)
		}
	}
	if o, _ := b.Service(mustKey(t, "tcp/10.0.0.1:3306")); o.Scheduler != "sh" || len(o.RealServers) != 1 {
		t.Fatalf("a rejected edit changed the table: %+v", o)
	}

	w := 3
	if err := c.Do(ctx, http.MethodPost, "/v1/lvs/services/db/real-servers", lvs.RealServerConfig{Address: "10.0.1.2", Weight: &w}, &sc); err != nil {
		t.Fatal(err)
	}
	if len(sc.RealServers) != 2 {
		t.Fatalf("add real server answered %+v", sc)
	}
	zero := 0
	if err := c.Do(ctx, http.MethodPut, "/v1/lvs/services/db/real-servers/10.0.1.2:3306", lvs.RealServerConfig{Address: "10.0.1.2", Weight: &zero}, nil); err != nil {
		t.Fatal(err)
	}
	if got, ok := kernelWeight(t, b, "tcp/10.0.0.1:3306", "10.0.1.2:3306"); !ok || got != 0 {
		t.Fatalf("drained real server: weight %d, present %v", got, ok)
	}
	if err := c.Do(ctx, http.MethodDelete, "/v1/lvs/services/db/real-servers/10.0.1.1", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := kernelWeight(t, b, "tcp/10.0.0.1:3306", "10.0.1.1:3306"); ok {
		t.Fatal("deleted real server still in the table")
	}
	upd := lvs.ServiceConfig{Name: "web", Address: "10.0.0.1:80", Scheduler: "wrr", RealServers: []lvs.RealServerConfig{{Address: "10.0.1.3"}}}
	if err := c.Do(ctx, http.MethodPut, "/v1/lvs/services/web", upd, nil); err != nil {
		t.Fatal(err)
	}
	if o, _ := b.Service(mustKey(t, "tcp/10.0.0.1:80")); o.Scheduler != "wrr" || len(o.RealServers) != 1 {
		t.Fatalf("updated service in the table: %+v", o)
	}
	if err := c.Do(ctx, http.MethodDelete, "/v1/lvs/services/db", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Service(mustKey(t, "tcp/10.0.0.1:3306")); ok {
		t.Fatal("deleted service still in the table")
	}
	var res control.LVSReconcileResult
	if err := c.Do(ctx, http.MethodPost, "/v1/lvs/reconcile", nil, &res); err != nil || res.Ops == nil || len(res.Ops) != 0 {
		t.Fatalf("reconcile after the edits: %+v, %v; want no operations", res, err)
	}
}

// A kernel that refuses an accepted change: 500 with the error, the change
// stays the desired state, and the next reconcile applies it.
func TestLVSKernelFailureKeepsTheChange(t *testing.T) {
	r, b := startLVSDaemon(t)
	ctx, c := context.Background(), r.client
	b.FailApply(errors.New("netlink: operation not permitted"))
	w := 0
	status, msg := apiError(t, c.Do(ctx, http.MethodPut, "/v1/lvs/services/web/real-servers/10.0.1.1", lvs.RealServerConfig{Address: "10.0.1.1", Weight: &w}, nil))
	if status != http.StatusInternalServerError || !strings.Contains(msg, "operation not permitted") || !strings.Contains(msg, "is kept") {
		t.Fatalf("%d %q", status, msg)
	}
	if st := lvsStatus(t, c); !strings.Contains(st.LastError, "operation not permitted") || st.Services[0].RealServers[0].Weight != 0 {
		t.Fatalf("status after the failure: last error %q, %+v", st.LastError, st.Services[0].RealServers[0])
	}
	if got, _ := kernelWeight(t, b, "tcp/10.0.0.1:80", "10.0.1.1:80"); got != 1 {
		t.Fatalf("the refused update reached the table: weight %d", got)
	}
	b.FailApply(nil)
	var res control.LVSReconcileResult
	if err := c.Do(ctx, http.MethodPost, "/v1/lvs/reconcile", nil, &res); err != nil || len(res.Ops) != 1 {
		t.Fatalf("reconcile: %+v, %v; want the pending change", res, err)
	}
	if got, _ := kernelWeight(t, b, "tcp/10.0.0.1:80", "10.0.1.1:80"); got != 0 {
		t.Fatalf("after reconcile: weight %d; want 0", got)
	}
}

// save returns the section in the config file's format; restore applies
// such a document (or a whole config file) and refuses what it cannot do.
func TestLVSSaveAndRestore(t *testing.T) {
	r, b := startLVSDaemon(t)
	ctx, c := context.Background(), r.client
	var saved control.LVSConfigDocument
	if err := c.Do(ctx, http.MethodGet, "/v1/lvs/config", nil, &saved); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(saved.YAML, "\nlvs:\n  backend: nftables\n") || !strings.Contains(saved.YAML, "      scheduler: rr\n") {
		t.Fatalf("saved document:\n%s", saved.YAML)
	}
	if err := c.Do(ctx, http.MethodDelete, "/v1/lvs/services/web", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, http.MethodPut, "/v1/lvs/config", saved, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := kernelWeight(t, b, "tcp/10.0.0.1:80", "10.0.1.1:80"); !ok {
		t.Fatal("restore did not bring the service back")
	}
	if lvsStatus(t, c).DiffersFromConfigFile {
		t.Fatal("after restoring the file's section the status still says it differs")
	}
	// A whole replicad config file: its lvs section is taken.
	whole := control.LVSConfigDocument{YAML: "node: {name: x}\nlvs:\n  backend: nftables\n  services: []\n"}
	if err := c.Do(ctx, http.MethodPut, "/v1/lvs/config", whole, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Service(mustKey(t, "tcp/10.0.0.1:80")); ok {
		t.Fatal("restoring an empty services list left the service")
	}
	for _, tc := range []struct{ doc, want string }{
		{"backend: ipvs\n", "cannot change while replicad runs"},
		{"backend: nftables\nservices: [{name: a, address: 10.0.0.1:80, bogus: 1}]\n", "lvs.services[0].bogus: unknown key"},
		{"services: [", "yaml"},
	} {
		status, msg := apiError(t, c.Do(ctx, http.MethodPut, "/v1/lvs/config", control.LVSConfigDocument{YAML: tc.doc}, nil))
		if status != http.StatusBadRequest || !strings.Contains(msg, tc.want) {
			t.Errorf("restore %q: %d %q; want 400 and %q", tc.doc, status, msg, tc.want)
		}
	}
}

// VIPs are reported, not acquired: present or not, and why not.
func TestLVSVIPs(t *testing.T) {
	r, _ := startLVSDaemon(t)
	var vips map[string]control.LVSVIPState
	if err := r.client.Do(context.Background(), http.MethodGet, "/v1/lvs/vips", nil, &vips); err != nil {
		t.Fatal(err)
	}
	if v := vips["loop"]; !v.Present || !v.LinkUp || v.Interface != "lo" {
		t.Errorf("127.0.0.1/8 on lo: %+v", v)
	}
	if v := vips["gone"]; v.Present || !strings.Contains(v.Problem, "no such interface") {
		t.Errorf("VIP on a missing interface: %+v", v)
	}
}

// Without an lvs section the endpoints say how to enable it.
func TestLVSDisabled(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	for _, path := range []string{"/v1/lvs", "/v1/lvs/config", "/v1/lvs/vips"} {
		status, msg := apiError(t, r.client.Do(context.Background(), http.MethodGet, path, nil, nil))
		if status != http.StatusNotFound || !strings.Contains(msg, "not enabled") || !strings.Contains(msg, "add an lvs section") {
			t.Errorf("%s: %d %q", path, status, msg)
		}
	}
}

// An invalid lvs section stops the daemon before it starts, naming fields.
func TestLVSConfigValidation(t *testing.T) {
	cfg := lvsTestConfig(t)
	w := 70000
	cfg.LVS.Services[0].RealServers[0].Weight = &w
	cfg.Log.Level = "loud"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "lvs.services[0].real-servers[0].weight: 70000") || !strings.Contains(err.Error(), "log.level") {
		t.Fatalf("Validate: %v; want both problems", err)
	}
}
