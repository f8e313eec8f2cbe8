package lvs_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/lvs"
	"github.com/replicad/replicad/lvs/lvstest"
)

// client dials from the client namespace on one OS thread.
type client struct {
	w *lvstest.Worker
}

func (c client) dial(local netip.Addr, addr string) (net.Conn, error) { return c.w.Dial(local, addr) }

// name connects, reads the server's name line and closes.
func (c client) name(local netip.Addr, addr string) (string, error) { return c.w.Name(local, addr) }

func (c client) httpClient() *http.Client {
	return &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true, // one connection per request: scheduling per request
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return c.dial(netip.Addr{}, addr)
			},
		},
	}
}

type testbed struct {
	topo   *lvstest.Topology
	client client
	names  map[string][]*lvstest.NameServer // by port
	https  []*lvstest.HTTPServer
	cfg    lvs.Config
	vip    string
}

func w(i int) *int { return &i }

func newTestbed(t *testing.T) *testbed {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "ip", "iproute2")
	testenv.RequireTool(t, "nft", "nftables")
	topo, err := lvstest.NewTopology(fmt.Sprintf("rpdlvs-%d", os.Getpid()%100000), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Errorf("deleting namespaces: %v", err)
		}
	})
	tb := &testbed{topo: topo, names: map[string][]*lvstest.NameServer{}, vip: topo.VIP.Addr().String()}
	for i, rs := range topo.RealServers {
		name := fmt.Sprintf("rs%d", i+1)
		for _, port := range []string{"9000", "9100"} {
			s, err := lvstest.StartNameServer(rs, name, ":"+port)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Stop)
			tb.names[port] = append(tb.names[port], s)
		}
		h, err := lvstest.StartHTTPServer(rs, name, ":8080")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Stop)
		tb.https = append(tb.https, h)
	}
	wk, err := topo.Client.NewWorker()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wk.Close)
	tb.client = client{w: wk}

	cfg := lvs.DefaultConfig()
	cfg.Backend = "nftables"
	cfg.VIPs = []lvs.VIPConfig{
		{Name: "front", Address: topo.VIP.String(), Interface: "eth0", ARPCount: 6, ARPInterval: 300 * time.Millisecond},
		{Name: "gateway", Address: topo.GatewayVIP.String(), Interface: "eth1", ARPCount: 6, ARPInterval: 300 * time.Millisecond},
	}
	rsList := func(port string, weights ...int) []lvs.RealServerConfig {
		var out []lvs.RealServerConfig
		for i, a := range topo.RealServerAddrs {
			rc := lvs.RealServerConfig{Address: a.String() + ":" + port}
			if weights != nil {
				rc.Weight = w(weights[i])
			}
			out = append(out, rc)
		}
		return out
	}
	cfg.Services = []lvs.ServiceConfig{
		{Name: "rr", Address: tb.vip + ":9000", Scheduler: "rr", RealServers: rsList("9000")},
		{Name: "sh", Address: tb.vip + ":9001", Scheduler: "sh", RealServers: rsList("9000")},
		{Name: "wrr", Address: tb.vip + ":80", Scheduler: "wrr", RealServers: rsList("8080", 1, 2, 3)},
		{Name: "checked", Address: tb.vip + ":9100", Scheduler: "rr", OnFailure: "quiesce",
			Check:       lvs.CheckConfig{Type: "tcp", Interval: 300 * time.Millisecond, Timeout: 200 * time.Millisecond, Rise: 2, Fall: 3},
			RealServers: rsList("9100")},
	}
	tb.cfg = cfg
	return tb
}

// director starts a manager in director i and returns it with its VIPs.
func (tb *testbed) director(t *testing.T, i int) (*lvs.Manager, []*lvs.VIP) {
	t.Helper()
	ns := tb.topo.Directors[i]
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("director", ns.Name)
	m, err := lvs.New(tb.cfg, lvs.Options{NetNS: ns.Path, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var vips []*lvs.VIP
	for _, vc := range tb.cfg.VIPs {
		v, err := lvs.NewVIP(vc, lvs.VIPOptions{NetNS: ns.Path, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		vips = append(vips, v)
	}
	return m, vips
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func acquire(t *testing.T, vips []*lvs.VIP) {
	t.Helper()
	for _, v := range vips {
		if err := v.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

var counterRE = regexp.MustCompile(`packets \d+ bytes \d+`)

// ruleset lists a table with rule handles and without counter values.
func ruleset(t *testing.T, ns *lvstest.NS, table string) string {
	t.Helper()
	out, err := ns.Exec("nft", "-a", "list", "table", "inet", table)
	if err != nil {
		t.Fatal(err)
	}
	return counterRE.ReplaceAllString(out, "packets N bytes N")
}

// without drops the blocks (chains, sets, maps) whose header mentions substr.
func without(ruleset, substr string) string {
	var out []string
	skip := false
	for _, l := range strings.Split(ruleset, "\n") {
		trimmed := strings.TrimSpace(l)
		if (strings.HasPrefix(trimmed, "chain ") || strings.HasPrefix(trimmed, "set ") || strings.HasPrefix(trimmed, "map ")) && strings.Contains(trimmed, "{") {
			skip = strings.Contains(trimmed, substr)
		}
		if !skip {
			out = append(out, l)
		}
		if trimmed == "}" {
			skip = false
		}
	}
	return strings.Join(out, "\n")
}

func kernelWeight(t *testing.T, m *lvs.Manager, service, addr string) string {
	t.Helper()
	st, err := m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Services {
		if s.Name != service {
			continue
		}
		for _, r := range s.RealServers {
			if r.Address == addr {
				if r.KernelWeight == nil {
					return "absent"
				}
				return fmt.Sprint(*r.KernelWeight)
			}
		}
	}
	return "unknown"
}

// The acceptance scenario on the nftables backend, in network
// namespaces: client, two directors, three real servers.
func TestLVSInNamespaces(t *testing.T) {
	tb := newTestbed(t)
	d1 := tb.topo.Directors[0]
	// Someone else's rules in the director: replicad must leave them alone.
	for _, cmd := range []string{
		"add table inet foreign",
		"add chain inet foreign c { type filter hook input priority 0; policy accept; }",
		"add rule inet foreign c counter",
	} {
		if _, err := d1.Exec("nft", cmd); err != nil {
			t.Fatal(err)
		}
	}
	foreignBefore := ruleset(t, d1, "foreign")

	m1, vips1 := tb.director(t, 0)
	acquire(t, vips1)
	m2, vips2 := tb.director(t, 1) // standby: tables loaded, no VIP
	defer m2.Close()

	t.Run("rr alternates exactly", func(t *testing.T) {
		var seq []string
		for range 30 {
			n, err := tb.client.name(netip.Addr{}, tb.vip+":9000")
			if err != nil {
				t.Fatal(err)
			}
			seq = append(seq, n)
		}
		for i := 3; i < len(seq); i++ {
			if seq[i] != seq[i-3] {
				t.Fatalf("rr is not an exact rotation: %v", seq)
			}
		}
		if seq[0] == seq[1] || seq[1] == seq[2] || seq[0] == seq[2] {
			t.Fatalf("rr did not use all three servers in each round: %v", seq[:3])
		}
	})

	t.Run("wrr matches the weights over 1200 connections", func(t *testing.T) {
		hc := tb.client.httpClient()
		count := map[string]int{}
		const n = 1200
		for range n {
			resp, err := hc.Get("http://" + tb.vip + ":80/")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			count[strings.TrimSpace(strings.TrimPrefix(string(b), "served-by "))]++
		}
		for name, weight := range map[string]int{"rs1": 1, "rs2": 2, "rs3": 3} {
			want := n * weight / 6
			if diff := count[name] - want; diff < -n*3/100 || diff > n*3/100 {
				t.Errorf("%s: %d of %d connections, want %d (weight %d of 6) within 3%%", name, count[name], n, want, weight)
			}
		}
		t.Logf("wrr 1:2:3 over %d connections: %v", n, count)
	})

	t.Run("sh keeps each client on one server", func(t *testing.T) {
		used := map[string]bool{}
		for _, src := range append([]netip.Addr{tb.topo.ClientAddr}, tb.topo.ClientExtra...) {
			first := ""
			for range 8 {
				n, err := tb.client.name(src, tb.vip+":9001")
				if err != nil {
					t.Fatal(err)
				}
				if first == "" {
					first = n
				} else if n != first {
					t.Fatalf("client %s moved from %s to %s", src, first, n)
				}
			}
			used[first] = true
		}
		if len(used) < 2 {
			t.Errorf("10 client addresses all hashed to %v; sh should spread them", used)
		}
	})

	t.Run("a stopped real server leaves the pool within fall x interval", func(t *testing.T) {
		victim := tb.names["9100"][1]
		victimAddr := tb.topo.RealServerAddrs[1].String() + ":9100"
		if got := kernelWeight(t, m1, "checked", victimAddr); got != "1" {
			t.Fatalf("before: kernel weight %s", got)
		}
		victim.Stop()
		stopped := time.Now()
		for kernelWeight(t, m1, "checked", victimAddr) != "0" {
			if time.Since(stopped) > 20*time.Second {
				t.Fatal("the stopped server was never quiesced")
			}
			time.Sleep(20 * time.Millisecond)
		}
		took := time.Since(stopped)
		// Behavioural bound, asserted generously: fall (3) × interval
		// (300ms) + timeout (200ms) = 1.1s is what the health core
		// guarantees (proved with a fake clock in lvs/health); on a
		// loaded 2-core machine allow 5s of scheduling slack on top.
		if bound := 3*300*time.Millisecond + 200*time.Millisecond; took > bound+5*time.Second {
			t.Errorf("quiesced %v after the stop; bound fall×interval+timeout = %v (+5s slack)", took, bound)
		}
		t.Logf("quiesced %v after the stop (fall×interval+timeout = 1.1s)", took)
		if h := m1.HealthOf("checked", netip.MustParseAddrPort(victimAddr)); h != "down" {
			t.Fatalf("health %s", h)
		}
		for i := range 60 {
			n, err := tb.client.name(netip.Addr{}, tb.vip+":9100")
			if err != nil {
				t.Fatalf("connection %d after the server left the pool failed: %v", i, err)
			}
			if n == "rs2" {
				t.Fatalf("connection %d went to the stopped server", i)
			}
		}
	})

	t.Run("restart keeps tables and established connections", func(t *testing.T) {
		conn, err := tb.client.dial(netip.Addr{}, tb.vip+":9000")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		before := ruleset(t, d1, "replicad_lvs")
		if err := m1.Close(); err != nil {
			t.Fatal(err)
		}
		m1b, err := lvs.New(tb.cfg, lvs.Options{NetNS: d1.Path})
		if err != nil {
			t.Fatal(err)
		}
		defer m1b.Close()
		res, err := m1b.Reconcile(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// The stopped server is Up again for the fresh manager until its
		// checks fail, so its weight may be the one change; nothing else.
		for _, op := range res.Ops {
			if !strings.Contains(op.String(), tb.topo.RealServerAddrs[1].String()+":9100") {
				t.Errorf("restart changed %s", op)
			}
		}
		// Every other rule keeps its handle: nothing was flushed or
		// rewritten (and so no counter or persistence entry was lost).
		after := ruleset(t, d1, "replicad_lvs")
		if b, a := without(before, "_9100"), without(after, "_9100"); b != a || !strings.Contains(a, "# handle") {
			t.Errorf("restart rewrote the table:\nbefore:\n%s\nafter:\n%s", b, a)
		}
		if _, err := fmt.Fprintln(conn, "still there?"); err != nil {
			t.Fatal(err)
		}
		if echo, err := r.ReadString('\n'); err != nil || echo != "still there?\n" {
			t.Fatalf("established connection broken by the restart: %q %v", echo, err)
		}
		if got := ruleset(t, d1, "foreign"); got != foreignBefore {
			t.Fatalf("foreign table changed:\n%s\nwas:\n%s", got, foreignBefore)
		}
		if err := m1b.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("VIP moves to the second director", func(t *testing.T) {
		c := tb.topo.Client
		vip := tb.topo.VIP.Addr()
		mac1, _ := d1.MAC("eth0")
		mac2, _ := tb.topo.Directors[1].MAC("eth0")
		hw, line, err := c.Neighbour(vip)
		if err != nil || hw.String() != mac1.String() {
			t.Fatalf("client's neighbour entry before the move: %q (want %s) %v", line, mac1, err)
		}
		for _, v := range vips1 {
			if err := v.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		acquire(t, vips2)
		defer func() {
			for _, v := range vips2 {
				v.Close()
			}
		}()
		// Wait for the gratuitous ARPs; the client sends nothing meanwhile,
		// so only they can change its entry.
		var got string
		for range 100 {
			hw, line, _ = c.Neighbour(vip)
			got = line
			if hw.String() == mac2.String() {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if hw.String() != mac2.String() {
			t.Fatalf("client's neighbour entry after the move: %q, want lladdr %s", got, mac2)
		}
		t.Logf("client: ip neigh show %s -> %s", vip, got)
		for range 6 {
			if _, err := tb.client.name(netip.Addr{}, tb.vip+":9000"); err != nil {
				t.Fatalf("new connection through the new director: %v", err)
			}
		}
		st, err := m2.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st.Services {
			if s.Name == "rr" && s.Stats.Connections < 6 {
				t.Fatalf("the new director's counters show %d connections", s.Stats.Connections)
			}
		}
	})
}
