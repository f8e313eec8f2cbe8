package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/internal/daemon"
	"github.com/replicad/replicad/lvs"
	"github.com/replicad/replicad/lvs/lvstest"
	"github.com/replicad/replicad/lvs/model"
)

// startLVS runs a daemon whose load balancer drives an in-memory table
// with one service "web" (two real servers) and a foreign service.
func startLVS(t *testing.T) (string, *lvstest.MemBackend) {
	t.Helper()
	b := lvstest.NewMemBackend(model.BackendNFTables)
	foreign, _ := model.ParseKey("tcp/10.9.9.9:22")
	b.AddForeign(model.Service{Key: foreign, Scheduler: "rr"})
	sock := startDaemonWith(t, t.TempDir(), func(c *daemon.Config) {
		lc := lvs.DefaultConfig()
		lc.Backend = "nftables"
		lc.VIPs = []lvs.VIPConfig{{Name: "front", Address: "127.0.0.1/8", Interface: "lo"}}
		lc.Services = []lvs.ServiceConfig{{Name: "web", Address: "10.0.0.1:80", Scheduler: "rr",
			RealServers: []lvs.RealServerConfig{{Address: "10.0.1.1"}, {Address: "10.0.1.2:8080"}}}}
		c.LVS, c.Volumes = &lc, nil
	}, func(o *daemon.Options) { o.LVSBackend = b })
	return sock, b
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := run(args...)
	if code != 0 {
		t.Fatalf("repctl %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

func tableService(t *testing.T, b *lvstest.MemBackend, key string) model.Observed {
	t.Helper()
	k, err := model.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := b.Service(k)
	return o
}

func weights(o model.Observed) string {
	var s []string
	for _, r := range o.RealServers {
		s = append(s, r.Addr.String()+"="+strings.TrimSpace(weightText(&r.Weight)))
	}
	return strings.Join(s, " ")
}

func TestLVSList(t *testing.T) {
	sock, b := startLVS(t)
	k, _ := model.ParseKey("tcp/10.0.0.1:80")
	b.SetStats(k, model.Stats{Connections: 12, BytesIn: 2048}, map[netip.AddrPort]model.Stats{
		netip.MustParseAddrPort("10.0.1.1:80"): {Connections: 7, ActiveConns: 3, InactiveConns: 1}})
	out := mustRun(t, "--socket", sock, "lvs", "list")
	for _, re := range []string{
		`backend nftables \(given by the caller\)`,
		`(?m)^web  tcp/10\.0\.0\.1:80  sched rr, on-failure quiesce$`,
		`conns 12, packets in/out 0/0, bytes in/out 2 KiB/0 B`,
		`(?m)^  ADDRESS\s+FWD\s+WEIGHT\s+HEALTH\s+CHECK\s+CONNS\s+ACTIVE\s+INACT\s+LAST-ERROR$`,
		`(?m)^  10\.0\.1\.1:80\s+nat\s+1/1/1\s+unchecked\s+none\s+7\s+3\s+1\s+-$`,
		`(?m)^  10\.0\.1\.2:8080\s+nat\s+1/1/1\s+unchecked\s+none\s+0\s+0\s+0\s+-$`,
		`not configured, left alone: tcp/10\.9\.9\.9:22`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("list output does not match %s:\n%s", re, out)
		}
	}
	if strings.Contains(out, "note: changed at runtime") {
		t.Errorf("no runtime change yet, but list says so:\n%s", out)
	}
	var st control.LVSStatus
	if err := json.Unmarshal([]byte(mustRun(t, "--socket", sock, "lvs", "list", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 1 || st.Services[0].RealServers[0].Stats.Connections != 7 || st.DiffersFromConfigFile {
		t.Fatalf("list --json: %+v", st)
	}
	if code, _, errOut := run("--socket", sock, "lvs", "list", "nope"); code != 1 || !strings.Contains(errOut, `no service named "nope"`) {
		t.Fatalf("list of an unknown service: %d %s", code, errOut)
	}
	out = mustRun(t, "--socket", sock, "lvs", "vips")
	if !regexp.MustCompile(`(?m)^front\s+127\.0\.0\.1/8\s+lo\s+yes\s+yes\s+-$`).MatchString(out) {
		t.Errorf("vips:\n%s", out)
	}
}

// Every edit command reaches the table, changes only what it names, and
// reminds that the config file does not have it.
func TestLVSEditCommands(t *testing.T) {
	sock, b := startLVS(t)
	lvsRun := func(args ...string) string {
		t.Helper()
		return mustRun(t, append([]string{"--socket", sock, "lvs"}, args...)...)
	}
	out := lvsRun("add-service", "db", "--address", "10.0.0.1:3306", "--scheduler", "sh", "--persistence", "300s/24",
		"--check", "tcp", "--interval", "2s", "--rs", "10.0.1.1", "--rs", "10.0.1.2:3307,weight=3")
	if !strings.Contains(out, "service db added with 2 real servers") || !strings.Contains(out, "repctl lvs save") {
		t.Fatalf("add-service: %s", out)
	}
	db := tableService(t, b, "tcp/10.0.0.1:3306")
	if db.Scheduler != "sh" || db.Persistence.Timeout.Seconds() != 300 || weights(db) != "10.0.1.1:3306=1 10.0.1.2:3307=3" {
		t.Fatalf("added service in the table: %+v", db)
	}
	lvsRun("edit-service", "db", "--scheduler", "rr")
	db = tableService(t, b, "tcp/10.0.0.1:3306")
	if db.Scheduler != "rr" || db.Persistence.Timeout.Seconds() != 300 || len(db.RealServers) != 2 {
		t.Fatalf("edit-service --scheduler changed more than the scheduler: %+v", db)
	}
	lvsRun("add-rs", "db", "10.0.1.3", "--weight", "2")
	lvsRun("edit-rs", "db", "10.0.1.1:3306", "--weight", "0")
	if w := weights(tableService(t, b, "tcp/10.0.0.1:3306")); w != "10.0.1.1:3306=0 10.0.1.2:3307=3 10.0.1.3:3306=2" {
		t.Fatalf("after add-rs and a drain: %s", w)
	}
	// An own check starts from the service's: only the port differs.
	lvsRun("edit-rs", "db", "10.0.1.3", "--check-port", "9200")
	var sc lvs.ServiceConfig
	if err := json.Unmarshal([]byte(lvsRun("edit-rs", "db", "10.0.1.3", "--fall", "5", "--json")), &sc); err != nil {
		t.Fatal(err)
	}
	if c := sc.RealServers[2].Check; c == nil || c.Type != "tcp" || c.Port != 9200 || c.Fall != 5 || c.Interval.Seconds() != 2 {
		t.Fatalf("real server's own check: %+v", c)
	}
	var inherited lvs.ServiceConfig // fresh: UnmarshalJSON keeps fields the JSON lacks
	if err := json.Unmarshal([]byte(lvsRun("edit-rs", "db", "10.0.1.3", "--check", "inherit", "--json")), &inherited); err != nil || inherited.RealServers[2].Check != nil {
		t.Fatalf("--check inherit: %+v, %v", inherited.RealServers[2], err)
	}
	lvsRun("delete-rs", "db", "10.0.1.2:3307")
	if w := weights(tableService(t, b, "tcp/10.0.0.1:3306")); w != "10.0.1.1:3306=0 10.0.1.3:3306=2" {
		t.Fatalf("after delete-rs: %s", w)
	}
	// IPv6 addresses travel in the path.
	lvsRun("add-service", "dns6", "--protocol", "udp", "--address", "[2001:db8::100]:53", "--rs", "[2001:db8::1]:53")
	lvsRun("edit-rs", "dns6", "[2001:db8::1]:53", "--weight", "4")
	if w := weights(tableService(t, b, "udp/[2001:db8::100]:53")); w != "[2001:db8::1]:53=4" {
		t.Fatalf("IPv6 real server: %s", w)
	}
	lvsRun("delete-service", "dns6")
	if o := tableService(t, b, "udp/[2001:db8::100]:53"); o.Key.String() != (model.Key{}).String() {
		t.Fatalf("deleted service still in the table: %+v", o)
	}
	if out := lvsRun("list"); !strings.Contains(out, "note: changed at runtime") {
		t.Fatalf("list after edits does not warn that the config file differs:\n%s", out)
	}
	if out := lvsRun("reconcile"); !strings.Contains(out, "nothing changed") {
		t.Fatalf("reconcile: %s", out)
	}
}

func TestLVSEditErrors(t *testing.T) {
	sock, b := startLVS(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"add-service", "x"}, 2, "--address"},
		{[]string{"add-service", "x", "--address", "10.0.0.1:81", "--rs", "10.0.1.1,weihgt=2"}, 2, `unknown key "weihgt"`},
		{[]string{"add-service", "x", "--address", "10.0.0.1:81", "--persistence", "soon"}, 2, "TIMEOUT[/PREFIX-LENGTH]"},
		{[]string{"add-service", "web", "--address", "10.0.0.1:81", "--rs", "10.0.1.1"}, 1, "hint: change it with `repctl lvs edit-service`"},
		{[]string{"add-service", "x", "--address", "10.0.0.1:81", "--scheduler", "lc", "--rs", "10.0.1.1"}, 1, "supported by: ipvs"},
		{[]string{"add-rs", "web", "10.0.1.9", "--weight", "70000"}, 1, "lvs.services[0].real-servers[2].weight: 70000; want 0..65535"},
		{[]string{"edit-rs", "web", "10.0.1.9", "--weight", "2"}, 1, "has no real server 10.0.1.9:80"},
		{[]string{"edit-rs", "web", "not-an-address"}, 2, "want ADDRESS or ADDRESS:PORT"},
		{[]string{"delete-service", "nope"}, 1, "hint: `repctl lvs list`"},
		{[]string{"delete-rs", "web"}, 2, "repctl --help"},
	} {
		code, _, errOut := run(append([]string{"--socket", sock, "lvs"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
	if w := weights(tableService(t, b, "tcp/10.0.0.1:80")); w != "10.0.1.1:80=1 10.0.1.2:8080=1" {
		t.Fatalf("failed edits changed the table: %s", w)
	}
}

// save writes the config file's format; restore brings it back, from the
// saved file or from a whole config file.
func TestLVSSaveRestore(t *testing.T) {
	sock, b := startLVS(t)
	file := filepath.Join(t.TempDir(), "lvs.yaml")
	if out := mustRun(t, "--socket", sock, "lvs", "save", "-o", file); !strings.Contains(out, "saved to "+file) {
		t.Fatalf("save: %s", out)
	}
	saved, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(saved), "\nlvs:\n  backend: nftables\n") {
		t.Fatalf("saved:\n%s", saved)
	}
	mustRun(t, "--socket", sock, "lvs", "delete-service", "web")
	if o := tableService(t, b, "tcp/10.0.0.1:80"); len(o.RealServers) != 0 {
		t.Fatal("delete-service left the service")
	}
	if out := mustRun(t, "--socket", sock, "lvs", "restore", file); !strings.Contains(out, "restored from "+file) {
		t.Fatalf("restore: %s", out)
	}
	if w := weights(tableService(t, b, "tcp/10.0.0.1:80")); w != "10.0.1.1:80=1 10.0.1.2:8080=1" {
		t.Fatalf("after restore: %s", w)
	}
	if out := mustRun(t, "--socket", sock, "lvs", "list"); strings.Contains(out, "note: changed at runtime") {
		t.Fatalf("restoring the saved start configuration still reports a difference:\n%s", out)
	}
	whole := filepath.Join(t.TempDir(), "replicad.yaml")
	os.WriteFile(whole, []byte("node: {name: n1}\nlvs:\n  backend: nftables\n  services:\n    - {name: web, address: 10.0.0.1:80, real-servers: [{address: 10.0.1.5}]}\n"), 0o644)
	mustRun(t, "--socket", sock, "lvs", "restore", whole)
	if w := weights(tableService(t, b, "tcp/10.0.0.1:80")); w != "10.0.1.5:80=1" {
		t.Fatalf("after restoring a whole config file: %s", w)
	}
	if code, _, errOut := run("--socket", sock, "lvs", "restore", filepath.Join(t.TempDir(), "none.yaml")); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Fatalf("restore of a missing file: %d %s", code, errOut)
	}
}

// Without an lvs section, repctl lvs says how to turn it on.
func TestLVSNotEnabled(t *testing.T) {
	sock := startDaemon(t)
	code, _, errOut := run("--socket", sock, "lvs", "list")
	if code != 1 || !strings.Contains(errOut, "load balancing is not enabled") || !strings.Contains(errOut, "hint: add an lvs section") {
		t.Fatalf("exit %d, %s", code, errOut)
	}
}
