package lvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"

	"github.com/replicad/replicad/lvs/model"
	"github.com/replicad/replicad/lvs/plan"
)

// memIPVS is a hand-written in-memory ipvs.Client with the kernel's
// identity rules (a service is its family, protocol, address, port or
// firewall mark; a destination its address and port) and its errors, and a
// log of every mutating call.
type memIPVS struct {
	mu       sync.Mutex // the manager calls from its goroutines
	services []*memService
	calls    []string
	failOn   string // a call prefix that fails with EIO
}

type memService struct {
	svc   ipvs.Service
	dests []ipvs.Destination
}

var _ ipvs.Client = (*memIPVS)(nil)

func svcID(s ipvs.Service) string {
	if s.FWMark != 0 {
		return fmt.Sprintf("fwm %d af %d", s.FWMark, s.Family)
	}
	return fmt.Sprintf("%d %s", s.Protocol, netip.AddrPortFrom(s.Address, s.Port))
}

func (m *memIPVS) find(s ipvs.Service) *memService {
	for _, x := range m.services {
		if svcID(x.svc) == svcID(s) {
			return x
		}
	}
	return nil
}

func (m *memIPVS) log(format string, a ...any) error {
	c := fmt.Sprintf(format, a...)
	m.calls = append(m.calls, c)
	if m.failOn != "" && strings.HasPrefix(c, m.failOn) {
		return syscall.EIO
	}
	return nil
}

func describeSvc(s ipvs.Service) string {
	return fmt.Sprintf("%s sched=%s flags=%#x timeout=%d mask=%s", svcID(s), s.Scheduler, uint32(s.Flags), s.Timeout, s.Netmask)
}

func describeDest(d ipvs.Destination) string {
	return fmt.Sprintf("%s fwd=%s w=%d tun=%s/%d", netip.AddrPortFrom(d.Address, d.Port), d.FwdMethod, d.Weight, d.TunnelType, d.TunnelPort)
}

func (m *memIPVS) Info() (ipvs.Info, error)     { return ipvs.Info{Version: [3]int{1, 2, 1}}, nil }
func (m *memIPVS) Config() (ipvs.Config, error) { return ipvs.Config{}, nil }
func (m *memIPVS) SetConfig(ipvs.Config) error  { return nil }
func (m *memIPVS) Service(s ipvs.Service) (ipvs.ServiceExtended, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if x := m.find(s); x != nil {
		return ipvs.ServiceExtended{Service: x.svc}, nil
	}
	return ipvs.ServiceExtended{}, os.ErrNotExist
}

func (m *memIPVS) Services() ([]ipvs.ServiceExtended, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.services) == 0 {
		return nil, os.ErrNotExist // what cloudflare/ipvs returns for an empty table
	}
	var out []ipvs.ServiceExtended
	for _, x := range m.services {
		s := x.svc
		s.Flags |= ipvs.ServiceHashed // the kernel reports this on every service
		out = append(out, ipvs.ServiceExtended{Service: s, Stats: ipvs.Stats{Connections: uint64(10 * len(x.dests))}})
	}
	return out, nil
}

func (m *memIPVS) CreateService(s ipvs.Service) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.log("CreateService %s", describeSvc(s)); err != nil {
		return err
	}
	if m.find(s) != nil {
		return syscall.EEXIST
	}
	m.services = append(m.services, &memService{svc: s})
	return nil
}

func (m *memIPVS) UpdateService(s ipvs.Service) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.log("UpdateService %s", describeSvc(s)); err != nil {
		return err
	}
	x := m.find(s)
	if x == nil {
		return syscall.ESRCH
	}
	x.svc = s
	return nil
}

func (m *memIPVS) RemoveService(s ipvs.Service) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.log("RemoveService %s", svcID(s)); err != nil {
		return err
	}
	x := m.find(s)
	if x == nil {
		return syscall.ESRCH
	}
	m.services = slices.DeleteFunc(m.services, func(y *memService) bool { return y == x })
	return nil
}

func (m *memIPVS) Destinations(s ipvs.Service) ([]ipvs.DestinationExtended, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	x := m.find(s)
	if x == nil {
		return nil, syscall.ESRCH
	}
	var out []ipvs.DestinationExtended
	for _, d := range x.dests {
		out = append(out, ipvs.DestinationExtended{Destination: d, ActiveConnections: 2, Stats: ipvs.Stats{Connections: 5}})
	}
	return out, nil
}

func (m *memIPVS) findDest(x *memService, d ipvs.Destination) int {
	return slices.IndexFunc(x.dests, func(e ipvs.Destination) bool { return e.Address == d.Address && e.Port == d.Port })
}

func (m *memIPVS) CreateDestination(s ipvs.Service, d ipvs.Destination) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.log("CreateDestination %s %s", svcID(s), describeDest(d)); err != nil {
		return err
	}
	x := m.find(s)
	if x == nil {
		return syscall.ESRCH
	}
	if m.findDest(x, d) >= 0 {
		return syscall.EEXIST
	}
	x.dests = append(x.dests, d)
	return nil
}

func (m *memIPVS) UpdateDestination(s ipvs.Service, d ipvs.Destination) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.log("UpdateDestination %s %s", svcID(s), describeDest(d)); err != nil {
		return err
	}
	x := m.find(s)
	if x == nil {
		return syscall.ESRCH
	}
	i := m.findDest(x, d)
	if i < 0 {
		return syscall.ENOENT
	}
	x.dests[i] = d
	return nil
}

func (m *memIPVS) RemoveDestination(s ipvs.Service, d ipvs.Destination) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.log("RemoveDestination %s %s", svcID(s), netip.AddrPortFrom(d.Address, d.Port)); err != nil {
		return err
	}
	x := m.find(s)
	if x == nil {
		return syscall.ESRCH
	}
	i := m.findDest(x, d)
	if i < 0 {
		return syscall.ENOENT
	}
	x.dests = slices.Delete(x.dests, i, i+1)
	return nil
}

func mustKey(s string) model.Key {
	k, err := model.ParseKey(s)
	if err != nil {
		panic(err)
	}
	return k
}

func nat(addr string, w uint32) model.RealServer {
	return model.RealServer{Addr: netip.MustParseAddrPort(addr), Weight: w, Forward: model.NAT}
}

// weights returns "addr=weight ..." of one service, under the lock.
func (m *memIPVS) weights(key string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.services {
		if svcID(x.svc) == key {
			var parts []string
			for _, d := range x.dests {
				parts = append(parts, fmt.Sprintf("%s=%d", netip.AddrPortFrom(d.Address, d.Port), d.Weight))
			}
			slices.Sort(parts)
			return strings.Join(parts, " ")
		}
	}
	return "(no service)"
}

func (m *memIPVS) takeCalls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.calls
	m.calls = nil
	return c
}

// reconcileIPVS runs one observe-plan-apply round and returns the calls it made.
func reconcileIPVS(t *testing.T, b *IPVS, m *memIPVS, desired ...model.Service) []string {
	t.Helper()
	m.calls = nil
	obs, err := b.Observe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ops, err := plan.Plan(desired, obs)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(context.Background(), desired, ops); err != nil {
		t.Fatal(err)
	}
	return m.calls
}

func TestIPVSCallsForEachSchedulerAndForwarding(t *testing.T) {
	for _, sch := range []model.Scheduler{model.RR, model.WRR, model.LC, model.WLC, model.SED, model.NQ, model.SH, model.DH, model.LBLC, model.LBLCR, model.MH} {
		m := &memIPVS{}
		b := NewIPVS(m, nil)
		s := model.Service{Key: mustKey("tcp/10.0.0.1:80"), Scheduler: sch, RealServers: []model.RealServer{nat("10.0.1.1:8080", 3)}}
		calls := reconcileIPVS(t, b, m, s)
		want := []string{
			"CreateService 6 10.0.0.1:80 sched=" + string(sch) + " flags=0x0 timeout=0 mask=255.255.255.255",
			"CreateDestination 6 10.0.0.1:80 10.0.1.1:8080 fwd=Masquerade w=3 tun=IPIP/0",
		}
		if !slices.Equal(calls, want) {
			t.Errorf("%s:\n got %q\nwant %q", sch, calls, want)
		}
	}

	m := &memIPVS{}
	b := NewIPVS(m, nil)
	s := model.Service{
		Key: mustKey("fwmark/9/ipv4"), Scheduler: model.WLC,
		Persistence: model.Persistence{Timeout: 300 * time.Second, PrefixLen: 24},
		RealServers: []model.RealServer{
			{Addr: netip.MustParseAddrPort("10.0.1.1:0"), Weight: 1, Forward: model.DR},
			{Addr: netip.MustParseAddrPort("10.0.1.2:0"), Weight: 2, Forward: model.Tunnel, Tunnel: model.GUE, TunnelPort: 6080},
		},
	}
	calls := reconcileIPVS(t, b, m, s)
	want := []string{
		"CreateService fwm 9 af 2 sched=wlc flags=0x1 timeout=300 mask=255.255.255.0",
		"CreateDestination fwm 9 af 2 10.0.1.1:0 fwd=DirectRoute w=1 tun=IPIP/0",
		"CreateDestination fwm 9 af 2 10.0.1.2:0 fwd=Tunnel w=2 tun=GUE/6080",
	}
	if !slices.Equal(calls, want) {
		t.Errorf("fwmark, persistence, dr and gue:\n got %q\nwant %q", calls, want)
	}
	v6 := model.Service{Key: mustKey("udp/[2001:db8::1]:53"), Scheduler: model.SH,
		Persistence: model.Persistence{Timeout: time.Minute, PrefixLen: 64},
		RealServers: []model.RealServer{nat("[2001:db8::2]:53", 1)}}
	calls = reconcileIPVS(t, b, m, s, v6)
	if len(calls) != 2 || !strings.Contains(calls[0], "17 [2001:db8::1]:53 sched=sh flags=0x1 timeout=60 mask=64") {
		t.Errorf("ipv6 persistence netmask as a prefix: %q", calls)
	}
}

func TestIPVSReconcileIsIdempotentAndMinimal(t *testing.T) {
	m := &memIPVS{}
	b := NewIPVS(m, nil)
	s := model.Service{Key: mustKey("tcp/10.0.0.1:80"), Scheduler: model.WRR,
		Persistence: model.Persistence{Timeout: time.Minute, PrefixLen: 32},
		RealServers: []model.RealServer{nat("10.0.1.1:80", 1), nat("10.0.1.2:80", 2)}}
	reconcileIPVS(t, b, m, s)
	if calls := reconcileIPVS(t, b, m, s); len(calls) != 0 {
		t.Fatalf("second reconcile of the same state called %q (the kernel's hashed flag must not count as a change)", calls)
	}
	s.RealServers[1].Weight = 0
	s.RealServers = append(s.RealServers, nat("10.0.1.3:80", 1))
	s.RealServers = s.RealServers[1:]
	calls := reconcileIPVS(t, b, m, s)
	want := []string{
		"CreateDestination 6 10.0.0.1:80 10.0.1.3:80 fwd=Masquerade w=1 tun=IPIP/0",
		"UpdateDestination 6 10.0.0.1:80 10.0.1.2:80 fwd=Masquerade w=0 tun=IPIP/0",
		"RemoveDestination 6 10.0.0.1:80 10.0.1.1:80",
	}
	if !slices.Equal(calls, want) {
		t.Fatalf("pool change:\n got %q\nwant %q", calls, want)
	}
	s.Scheduler = model.SH
	if calls := reconcileIPVS(t, b, m, s); len(calls) != 1 || !strings.HasPrefix(calls[0], "UpdateService 6 10.0.0.1:80 sched=sh") {
		t.Fatalf("scheduler change: %q", calls)
	}
	if calls := reconcileIPVS(t, b, m); !slices.Equal(calls, []string{"RemoveService 6 10.0.0.1:80"}) {
		t.Fatalf("removal: %q", calls)
	}
}

// Services created by someone else (ipvsadm, keepalived) are never touched,
// even across a restart that forgot nothing (file store) — and one the
// config names is adopted.
func TestIPVSLeavesForeignServicesAlone(t *testing.T) {
	m := &memIPVS{}
	foreign := ipvs.Service{Family: ipvs.INET, Protocol: ipvs.TCP, Address: netip.MustParseAddr("10.9.9.9"), Port: 22, Scheduler: "wlc", Netmask: netmask.MaskFrom(32, 32)}
	m.CreateService(foreign)
	m.CreateDestination(foreign, ipvs.Destination{Address: netip.MustParseAddr("10.9.9.10"), Port: 22, Family: ipvs.INET, Weight: 1})
	store := NewFileOwnedStore(filepath.Join(t.TempDir(), "owned.json"))
	b := NewIPVS(m, store)
	mine := model.Service{Key: mustKey("tcp/10.0.0.1:80"), Scheduler: model.RR, RealServers: []model.RealServer{nat("10.0.1.1:80", 1)}}
	reconcileIPVS(t, b, m, mine)

	// "Restart": a new backend on the same kernel and state file, with an
	// empty config.
	b2 := NewIPVS(m, store)
	calls := reconcileIPVS(t, b2, m)
	if !slices.Equal(calls, []string{"RemoveService 6 10.0.0.1:80"}) {
		t.Fatalf("restart with the service removed from the config: %q", calls)
	}
	if m.find(foreign) == nil || len(m.find(foreign).dests) != 1 {
		t.Fatal("the foreign service was changed")
	}
	obs, _ := b2.Observe(context.Background())
	if len(obs) != 1 || obs[0].Owned {
		t.Fatalf("foreign service observed as %+v", obs)
	}

	adopt := model.Service{Key: mustKey("tcp/10.9.9.9:22"), Scheduler: model.RR, RealServers: []model.RealServer{nat("10.9.9.11:22", 1)}}
	calls = reconcileIPVS(t, b2, m, adopt)
	if len(calls) != 3 || !strings.HasPrefix(calls[0], "UpdateService") {
		t.Fatalf("adoption: %q", calls)
	}
	owned, _ := store.Load()
	if !owned[adopt.Key] {
		t.Fatal("an adopted service is owned from then on")
	}
}

func TestIPVSObserveStatsAndEmptyTable(t *testing.T) {
	m := &memIPVS{}
	b := NewIPVS(m, nil)
	obs, err := b.Observe(context.Background())
	if err != nil || len(obs) != 0 {
		t.Fatalf("empty table (ErrNotExist from the client) = %v, %v", obs, err)
	}
	reconcileIPVS(t, b, m, model.Service{Key: mustKey("tcp/10.0.0.1:80"), Scheduler: model.RR, RealServers: []model.RealServer{nat("10.0.1.1:80", 1)}})
	obs, _ = b.Observe(context.Background())
	st := obs[0].RealServerStats[netip.MustParseAddrPort("10.0.1.1:80")]
	if obs[0].Stats.Connections != 10 || st.Connections != 5 || st.ActiveConns != 2 {
		t.Fatalf("stats %+v / %+v", obs[0].Stats, st)
	}
}

func TestIPVSApplyStopsAtFirstErrorAndRecordsOwnership(t *testing.T) {
	m := &memIPVS{failOn: "CreateDestination"}
	b := NewIPVS(m, nil)
	s := model.Service{Key: mustKey("tcp/10.0.0.1:80"), Scheduler: model.RR, RealServers: []model.RealServer{nat("10.0.1.1:80", 1), nat("10.0.1.2:80", 1)}}
	obs, _ := b.Observe(context.Background())
	ops, _ := plan.Plan([]model.Service{s}, obs)
	err := b.Apply(context.Background(), []model.Service{s}, ops)
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "create-real-server") {
		t.Fatalf("Apply = %v", err)
	}
	if len(m.calls) != 2 {
		t.Fatalf("calls after the failure: %q", m.calls)
	}
	m.failOn = ""
	obs, _ = b.Observe(context.Background())
	if len(obs) != 1 || !obs[0].Owned {
		t.Fatal("the service created before the failure must be recorded as owned")
	}
	if calls := reconcileIPVS(t, b, m, s); len(calls) != 2 {
		t.Fatalf("the next reconcile finishes the job: %q", calls)
	}
}

// The integration test against the kernel's ip_vs; this kernel has none.
func TestIPVSOnKernel(t *testing.T) {
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Skip("skipping: this kernel has no ip_vs (/proc/net/ip_vs absent); the IPVS backend is covered by the in-memory ipvs.Client tests above")
	}
	ns := kernelNS(t)
	b, err := OpenIPVS(ns.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := model.Service{Key: mustKey("tcp/10.9.9.1:80"), Scheduler: model.WLC,
		Persistence: model.Persistence{Timeout: time.Minute, PrefixLen: 24},
		RealServers: []model.RealServer{nat("10.9.0.1:80", 1), nat("10.9.0.2:80", 2)}}
	for i, desired := range [][]model.Service{{s}, {s}, nil} {
		ops := reconcileOnce(t, b, desired)
		if i == 1 && len(ops) != 0 {
			t.Fatalf("not idempotent on the kernel: %v", ops)
		}
	}
}
