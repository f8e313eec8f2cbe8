package integration

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/lvs/lvstest"
)

// lvsBed is a replicad running as the director of the lvstest topology,
// driven by the real repctl.
type lvsBed struct {
	t      *testing.T
	topo   *lvstest.Topology
	node   *node
	client *lvstest.Worker
	vip    string
	base   string // the config without its lvs section
}

const lvsSection = `lvs:
  backend: nftables
  resync-interval: 2s
  vips:
    - {name: front, address: 10.231.1.100/24, interface: eth0}
  services:
    - name: web
      address: 10.231.1.100:9000
      scheduler: rr
      check: {type: tcp, interval: 300ms, timeout: 200ms}
      real-servers:
        - address: 10.231.2.11
        - address: 10.231.2.12
`

func newLVSBed(t *testing.T) *lvsBed {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "ip", "iproute2")
	testenv.RequireTool(t, "nft", "nftables")
	topo, err := lvstest.NewTopology(fmt.Sprintf("rpdlw-%d", os.Getpid()%100000), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Errorf("deleting namespaces: %v", err)
		}
	})
	for i, rs := range topo.RealServers {
		for _, port := range []string{":9000", ":9100"} {
			s, err := lvstest.StartNameServer(rs, fmt.Sprintf("rs%d", i+1), port)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Stop)
		}
	}
	// The VIPs are this director's: the cluster manager will acquire
	// them; here the test does.
	d := topo.Directors[0]
	for _, a := range [][2]string{{topo.VIP.String(), "eth0"}, {topo.GatewayVIP.String(), "eth1"}} {
		if _, err := d.IP("addr", "add", a[0], "dev", a[1]); err != nil {
			t.Fatal(err)
		}
	}
	w, err := topo.Client.NewWorker()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	n := newNode(t)
	n.wrap = []string{"ip", "netns", "exec", d.Name}
	base, err := os.ReadFile(n.config)
	if err != nil {
		t.Fatal(err)
	}
	b := &lvsBed{t: t, topo: topo, node: n, client: w, vip: topo.VIP.Addr().String(), base: string(base)}
	b.writeConfig(lvsSection)
	return b
}

func (b *lvsBed) writeConfig(section string) {
	b.t.Helper()
	if err := os.WriteFile(b.node.config, []byte(b.base+section), 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// start runs replicad and waits for its load balancer: the control
// socket answers before the first reconcile is done, /v1/lvs only after.
func (b *lvsBed) start() {
	b.t.Helper()
	b.node.start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := b.node.repctl("lvs", "list")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("repctl lvs list still fails 30s after start: %v\n%s\n%s", err, out, b.node.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *lvsBed) lvs(args ...string) string {
	b.t.Helper()
	return b.node.mustRepctl(append([]string{"lvs"}, args...)...)
}

func (b *lvsBed) status() control.LVSStatus {
	b.t.Helper()
	var st control.LVSStatus
	jsonUnmarshal(b.t, b.lvs("list", "--json"), &st)
	return st
}

// served makes n connections to the VIP's port and counts the real
// servers that answered.
func (b *lvsBed) served(port string, n int) map[string]int {
	b.t.Helper()
	got := map[string]int{}
	for range n {
		name, err := b.client.Name(b.topo.ClientAddr, b.vip+port)
		if err != nil {
			b.t.Fatalf("connection to %s%s: %v (served so far: %v)", b.vip, port, err, got)
		}
		got[name]++
	}
	return got
}

func (b *lvsBed) wantServed(port string, n int, want map[string]int) {
	b.t.Helper()
	got := b.served(port, n)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		b.t.Fatalf("%d connections to %s were served by %v; want %v", n, port, got, want)
	}
}

func (b *lvsBed) wantRefused(port string) {
	b.t.Helper()
	if name, err := b.client.Name(b.topo.ClientAddr, b.vip+port); err == nil {
		b.t.Fatalf("connection to %s%s served by %s; want it refused", b.vip, port, name)
	}
}

// nftList lists a table of the director with rule handles and without
// counter values, which traffic changes.
func (b *lvsBed) nftList(table string) string {
	b.t.Helper()
	out, err := b.topo.Directors[0].Exec("nft", "-a", "list", "table", "inet", table)
	if err != nil {
		b.t.Fatal(err)
	}
	return regexp.MustCompile(`packets \d+ bytes \d+`).ReplaceAllString(out, "packets N bytes N")
}

// Issue 6 end to end: replicad's config drives the director's nftables,
// `repctl lvs` lists weights, health and counters, edits services and real
// servers at runtime with traffic following at once, saves and restores
// the config format, and a restart changes no rule, keeps an established
// connection and leaves a foreign table alone.
func TestLVSThroughRepctl(t *testing.T) {
	b := newLVSBed(t)
	d := b.topo.Directors[0]
	for _, cmd := range []string{
		"add table inet rpdlw_foreign",
		"add chain inet rpdlw_foreign input { type filter hook input priority 10 ; policy accept ; }",
		"add rule inet rpdlw_foreign input tcp dport 22 counter",
	} {
		if _, err := d.Exec("nft", cmd); err != nil {
			t.Fatal(err)
		}
	}
	foreign := b.nftList("rpdlw_foreign")
	b.start()

	// The configured service is in the kernel: rr alternates exactly.
	b.wantServed(":9000", 6, map[string]int{"rs1": 3, "rs2": 3})
	out := b.lvs("list")
	t.Logf("repctl lvs list:\n%s", out)
	for _, re := range []string{
		`(?m)^backend nftables \(configured`,
		`(?m)^web  tcp/10\.231\.1\.100:9000  sched rr, on-failure quiesce$`,
		`(?m)^  conns 6, `,
		`(?m)^  10\.231\.2\.11:9000\s+nat\s+1/1/1\s+up\s+tcp\s+3\s+0\s+0\s+-$`,
		`(?m)^  10\.231\.2\.12:9000\s+nat\s+1/1/1\s+up\s+tcp\s+3\s+0\s+0\s+-$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("repctl lvs list does not match %s", re)
		}
	}
	if st := b.status(); len(st.Services) != 1 || st.Services[0].Stats.Connections != 6 || st.DiffersFromConfigFile {
		t.Errorf("list --json: %+v", st)
	}
	if out := b.lvs("vips"); !regexp.MustCompile(`(?m)^front\s+10\.231\.1\.100/24\s+eth0\s+yes\s+yes\s+-$`).MatchString(out) {
		t.Errorf("repctl lvs vips:\n%s", out)
	}

	// Real servers at runtime: add, drain, delete.
	b.lvs("add-rs", "web", "10.231.2.13")
	b.wantServed(":9000", 9, map[string]int{"rs1": 3, "rs2": 3, "rs3": 3})
	b.lvs("edit-rs", "web", "10.231.2.11", "--weight", "0")
	b.wantServed(":9000", 6, map[string]int{"rs2": 3, "rs3": 3})
	b.lvs("delete-rs", "web", "10.231.2.12:9000")
	b.wantServed(":9000", 4, map[string]int{"rs3": 4})
	if out := b.lvs("list", "web"); !regexp.MustCompile(`(?m)^  10\.231\.2\.11:9000\s+nat\s+0/0/0\s+up`).MatchString(out) {
		t.Errorf("drained real server:\n%s", out)
	}

	// Services at runtime: add, edit, delete.
	b.lvs("add-service", "web2", "--address", b.vip+":9100", "--scheduler", "rr", "--rs", "10.231.2.11", "--rs", "10.231.2.12")
	b.wantServed(":9100", 4, map[string]int{"rs1": 2, "rs2": 2})
	b.lvs("edit-service", "web2", "--scheduler", "sh")
	if got := b.served(":9100", 6); len(got) != 1 {
		t.Errorf("sh sent one client to %v; want one server", got)
	}
	b.lvs("delete-service", "web2")
	b.wantRefused(":9100")

	// Save, lose the service, restore it.
	file := filepath.Join(t.TempDir(), "lvs-saved.yaml")
	b.lvs("save", "-o", file)
	if out := b.lvs("list"); !strings.Contains(out, "note: changed at runtime") {
		t.Errorf("list after runtime edits does not warn that a restart reverts them:\n%s", out)
	}
	b.lvs("delete-service", "web")
	b.wantRefused(":9000")
	b.lvs("restore", file)
	b.wantServed(":9000", 3, map[string]int{"rs3": 3})

	// Keep the runtime changes in the config file, then restart replicad
	// under an established connection.
	saved, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b.writeConfig(string(saved))
	conn, err := b.client.Dial(b.topo.ClientAddr, b.vip+":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	echo := func(msg string) {
		t.Helper()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(conn, "%s\n", msg); err != nil {
			t.Fatalf("established connection, %s: %v", msg, err)
		}
		if line, err := rd.ReadString('\n'); err != nil || strings.TrimSpace(line) != msg {
			t.Fatalf("established connection, %s: got %q, %v", msg, line, err)
		}
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if name, err := rd.ReadString('\n'); err != nil || name != "rs3\n" {
		t.Fatalf("established connection greeting %q, %v", name, err)
	}
	echo("before restart")
	rules := b.nftList("replicad_lvs")
	if err := b.node.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("replicad exit: %v\n%s", err, b.node.log)
	}
	echo("while replicad is down") // the kernel tables stay
	b.wantServed(":9000", 2, map[string]int{"rs3": 2})
	b.start()
	b.lvs("reconcile")
	echo("after restart")
	if got := b.nftList("replicad_lvs"); got != rules {
		t.Errorf("restart changed the ruleset:\nbefore:\n%s\nafter:\n%s", rules, got)
	}
	if got := b.nftList("rpdlw_foreign"); got != foreign {
		t.Errorf("the foreign table changed:\nbefore:\n%s\nafter:\n%s", foreign, got)
	}
	if st := b.status(); st.DiffersFromConfigFile || len(st.Services) != 1 || len(st.Services[0].RealServers) != 2 {
		t.Errorf("after the restart with the saved section: %+v", st)
	}
	b.wantServed(":9000", 2, map[string]int{"rs3": 2})
}
