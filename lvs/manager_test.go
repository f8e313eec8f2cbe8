package lvs

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/clock"
	"github.com/replicad/replicad/lvs/model"
)

// listeners are loopback TCP servers standing in for real servers.
func listeners(t *testing.T, n int) []net.Listener {
	t.Helper()
	var out []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		out = append(out, ln)
	}
	return out
}

func intp(i int) *int { return &i }

// eventually advances the fake clock in small steps until cond holds (the
// manager's goroutines run the checks and reconciles in between). It
// bounds the wait by a number of steps, not by wall-clock time.
func eventually(t *testing.T, fake *clock.Fake, step time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := fake.Now()
	for range 2000 {
		if cond() {
			return fake.Now().Sub(start)
		}
		time.Sleep(2 * time.Millisecond)
		fake.Advance(step)
	}
	t.Fatalf("never happened: %s", what)
	return 0
}

type events struct {
	mu  sync.Mutex
	evs []HealthEvent
}

func (e *events) add(ev HealthEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

func (e *events) list() []HealthEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]HealthEvent(nil), e.evs...)
}

func managerConfig(lns []net.Listener, check CheckConfig, onFailure, sorry string) Config {
	cfg := DefaultConfig()
	sc := ServiceConfig{Name: "web", Address: "10.0.0.1:80", Scheduler: "wrr", OnFailure: onFailure, SorryServer: sorry, Check: check}
	for i, ln := range lns {
		sc.RealServers = append(sc.RealServers, RealServerConfig{Address: ln.Addr().String(), Weight: intp(i + 1)})
	}
	cfg.Services = []ServiceConfig{sc}
	return cfg
}

func startManager(t *testing.T, cfg Config, mem *memIPVS, fake *clock.Fake, ev *events) *Manager {
	t.Helper()
	m, err := New(cfg, Options{Backend: NewIPVS(mem, nil), Clock: fake, OnHealthChange: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// A stopped real server is quiesced within fall×interval (+ timeout) of
// fake time; when it comes back it returns after rise checks.
func TestManagerQuiescesAFailedServerAndRestoresIt(t *testing.T) {
	lns := listeners(t, 3)
	fake := clock.NewFake(time.Unix(1e9, 0))
	mem := &memIPVS{}
	ev := &events{}
	check := CheckConfig{Type: "tcp", Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 3}
	m := startManager(t, managerConfig(lns, check, "quiesce", ""), mem, fake, ev)
	svc := "6 10.0.0.1:80"
	a0, a1, a2 := lns[0].Addr().String(), lns[1].Addr().String(), lns[2].Addr().String()
	if got := mem.weights(svc); got != strings.Join(sortedStrings(a0+"=1", a1+"=2", a2+"=3"), " ") {
		t.Fatalf("initial weights %s", got)
	}
	dead := lns[1]
	deadAP := dead.Addr().(*net.TCPAddr).AddrPort()
	dead.Close()
	took := eventually(t, fake, 100*time.Millisecond, "the stopped server quiesced", func() bool {
		return strings.Contains(mem.weights(svc), a1+"=0")
	})
	if bound := 3*time.Second + 500*time.Millisecond + 100*time.Millisecond; took > bound {
		t.Errorf("quiesced after %v of fake time, bound fall×interval+timeout(+step) = %v", took, bound)
	}
	evs := ev.list()
	if len(evs) != 1 || evs[0].To != "down" || evs[0].RealServer != deadAP || !strings.Contains(evs[0].Reason, "refused") {
		t.Fatalf("events %+v", evs)
	}
	st, err := m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var row RealServerStatus
	for _, r := range st.Services[0].RealServers {
		if r.Address == a1 {
			row = r
		}
	}
	if row.Health != "down" || row.Weight != 2 || *row.EffectiveWeight != 0 || *row.KernelWeight != 0 {
		t.Fatalf("status row %+v", row)
	}

	// Bring it back on the same port.
	ln, err := net.Listen("tcp", a1)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", a1, err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	eventually(t, fake, 100*time.Millisecond, "the server back at its weight", func() bool {
		return strings.Contains(mem.weights(svc), a1+"=2")
	})
	if evs := ev.list(); len(evs) != 2 || evs[1].To != "up" {
		t.Fatalf("events %+v", evs)
	}
}

func sortedStrings(s ...string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func TestManagerRemovesAndFallsBackToTheSorryServer(t *testing.T) {
	lns := listeners(t, 2)
	fake := clock.NewFake(time.Unix(1e9, 0))
	mem := &memIPVS{}
	check := CheckConfig{Type: "tcp", Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1}
	m := startManager(t, managerConfig(lns, check, "remove", "127.0.0.1:9"), mem, fake, &events{})
	svc := "6 10.0.0.1:80"
	lns[0].Close()
	eventually(t, fake, 100*time.Millisecond, "first server removed", func() bool {
		return !strings.Contains(mem.weights(svc), lns[0].Addr().String())
	})
	if strings.Contains(mem.weights(svc), "127.0.0.1:9") {
		t.Fatal("sorry server added while a server is up")
	}
	lns[1].Close()
	eventually(t, fake, 100*time.Millisecond, "sorry server alone", func() bool {
		return mem.weights(svc) == "127.0.0.1:9=1"
	})
	st, _ := m.Status(context.Background())
	if !st.Services[0].SorryActive {
		t.Fatalf("status does not show the sorry server active: %+v", st.Services[0])
	}
}

// A restarted manager finds the kernel as it left it and changes nothing
// (no flush: established connections and counters stay).
func TestManagerRestartTouchesNothing(t *testing.T) {
	lns := listeners(t, 2)
	mem := &memIPVS{}
	cfg := managerConfig(lns, CheckConfig{}, "", "")
	m1 := startManager(t, cfg, mem, clock.NewFake(time.Unix(1e9, 0)), &events{})
	m1.Close()
	mem.takeCalls()
	m2 := startManager(t, cfg, mem, clock.NewFake(time.Unix(1e9, 0)), &events{})
	if calls := mem.takeCalls(); len(calls) != 0 {
		t.Fatalf("restart made calls: %q", calls)
	}
	if res, err := m2.Reconcile(context.Background()); err != nil || len(res.Ops) != 0 {
		t.Fatalf("reconcile after restart: %v %v", res.Ops, err)
	}
}

func TestManagerRuntimeEdits(t *testing.T) {
	lns := listeners(t, 2)
	mem := &memIPVS{}
	m := startManager(t, managerConfig(lns[:1], CheckConfig{}, "", ""), mem, clock.NewFake(time.Unix(1e9, 0)), &events{})
	ctx := context.Background()
	a0, a1 := lns[0].Addr().String(), lns[1].Addr().String()

	if err := m.AddRealServer(ctx, "web", RealServerConfig{Address: a1, Weight: intp(5)}); err != nil {
		t.Fatal(err)
	}
	if got := mem.weights("6 10.0.0.1:80"); !strings.Contains(got, a1+"=5") {
		t.Fatalf("added real server: %s", got)
	}
	if err := m.AddRealServer(ctx, "web", RealServerConfig{Address: a1}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate add: %v", err)
	}
	if err := m.UpdateRealServer(ctx, "web", a0, RealServerConfig{Address: a0, Weight: intp(0)}); err != nil {
		t.Fatal(err)
	}
	if got := mem.weights("6 10.0.0.1:80"); !strings.Contains(got, a0+"=0") {
		t.Fatalf("drained: %s", got)
	}
	if err := m.DeleteRealServer(ctx, "web", "127.0.0.9:1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete unknown: %v", err)
	}
	// An edit the running backend cannot express is refused and changes nothing.
	sc, _ := m.Service("web")
	sc.Scheduler = "random"
	err := m.UpdateService(ctx, "web", sc)
	if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, model.ErrUnsupported) || !strings.Contains(err.Error(), "supported by: nftables") {
		t.Fatalf("random on ipvs: %v", err)
	}
	if got, _ := m.Service("web"); got.Scheduler != "wrr" {
		t.Fatal("a refused edit changed the config")
	}
	bad := ServiceConfig{Name: "udp", Protocol: "udp", Address: "10.0.0.1:53"}
	if err := m.AddService(ctx, bad); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "real-servers: empty") {
		t.Fatalf("invalid service: %v", err)
	}
	dns := ServiceConfig{Name: "dns", Protocol: "udp", Address: "10.0.0.1:53", Scheduler: "sh", RealServers: []RealServerConfig{{Address: "10.0.1.1"}}}
	if err := m.AddService(ctx, dns); err != nil {
		t.Fatal(err)
	}
	if got := mem.weights("17 10.0.0.1:53"); got != "10.0.1.1:53=1" {
		t.Fatalf("new service: %s", got)
	}

	// Save and restore through the config format.
	saved, err := m.Config().EncodeYAML()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteService(ctx, "dns"); err != nil {
		t.Fatal(err)
	}
	if got := mem.weights("17 10.0.0.1:53"); got != "(no service)" {
		t.Fatalf("deleted service still there: %s", got)
	}
	restored, err := ParseConfig(saved)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetConfig(ctx, restored); err != nil {
		t.Fatal(err)
	}
	if got := mem.weights("17 10.0.0.1:53"); got != "10.0.1.1:53=1" {
		t.Fatalf("restored service: %s", got)
	}
	restored.Backend = "nftables"
	if err := m.SetConfig(ctx, restored); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("backend change at runtime: %v", err)
	}

	st, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	for _, want := range []string{`"backend":"ipvs"`, `"name":"dns"`, `"key":"udp/10.0.0.1:53"`, `"kernel_weight":1`, `"health":"unchecked"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("status JSON lacks %s: %s", want, b)
		}
	}
}

func TestManagerClose(t *testing.T) {
	m := startManager(t, DefaultConfig(), &memIPVS{}, clock.NewFake(time.Unix(1e9, 0)), &events{})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.AddService(context.Background(), ServiceConfig{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("edit after Close: %v", err)
	}
}
