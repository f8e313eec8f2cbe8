package lvs

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/lvs/lvstest"
	"github.com/replicad/replicad/lvs/model"
	"github.com/replicad/replicad/lvs/plan"
)

func kernelNS(t *testing.T) *lvstest.NS {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "ip", "iproute2")
	ns, err := lvstest.AddNS(fmt.Sprintf("rpdlvs-%d-k", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Delete() })
	return ns
}

func reconcileOnce(t *testing.T, b Backend, desired []model.Service) []plan.Op {
	t.Helper()
	obs, err := b.Observe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ops, err := plan.Plan(desired, obs)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(context.Background(), desired, ops); err != nil {
		t.Fatalf("apply %v: %v", ops, err)
	}
	return ops
}

// The generated rules load into a real kernel, read back as the same
// services, and re-applying writes nothing.
func TestNFTablesBackendOnKernel(t *testing.T) {
	ns := kernelNS(t)
	b := NewNFTables("replicad_lvs", ns.Path, nil)
	mk := func(k string, s model.Scheduler, pers time.Duration, w ...uint32) model.Service {
		key, _ := model.ParseKey(k)
		svc := model.Service{Key: key, Scheduler: s, Persistence: model.Persistence{Timeout: pers, PrefixLen: key.Family.Bits()}}
		if pers == 0 {
			svc.Persistence = model.Persistence{}
		}
		for i, wt := range w {
			a := fmt.Sprintf("10.9.0.%d:8080", i+1)
			if key.Family == model.IPv6 {
				a = fmt.Sprintf("[2001:db8:9::%d]:8080", i+1)
			}
			if key.IsFWMark() {
				a = fmt.Sprintf("10.9.0.%d:0", i+1)
			}
			svc.RealServers = append(svc.RealServers, model.RealServer{Addr: netip.MustParseAddrPort(a), Weight: wt, Forward: model.NAT})
		}
		return svc
	}
	steps := [][]model.Service{
		{mk("tcp/10.9.9.1:80", model.RR, 0, 1, 1, 1)},
		{mk("tcp/10.9.9.1:80", model.WRR, 300*time.Second, 1, 2, 0), mk("udp/10.9.9.1:53", model.Random, 0, 1, 3),
			mk("tcp/[2001:db8::1]:443", model.SH, 60*time.Second, 1, 1), mk("fwmark/7/ipv4", model.DH, 0, 2, 1)},
		{mk("tcp/10.9.9.1:80", model.WRR, 600*time.Second, 3, 2), mk("fwmark/7/ipv4", model.DH, 0, 2, 1)},
		nil,
	}
	for i, desired := range steps {
		ops := reconcileOnce(t, b, desired)
		if len(ops) == 0 && i < 3 {
			t.Fatalf("step %d: no ops", i)
		}
		// Operators must be able to read what we wrote.
		out, err := ns.Exec("nft", "list", "ruleset")
		if err != nil {
			t.Fatalf("step %d: nft cannot print the ruleset: %v", i, err)
		}
		if i == 1 {
			t.Logf("ruleset after step 1:\n%s", out)
		}
		if again := reconcileOnce(t, b, desired); len(again) != 0 {
			out, _ := ns.Exec("nft", "list", "ruleset")
			t.Fatalf("step %d: not idempotent on the kernel: %v\n%s", i, again, out)
		}
	}
	out, err := ns.Exec("nft", "list", "table", "inet", "replicad_lvs")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "svc_") {
		t.Fatalf("services left behind:\n%s", out)
	}
}

// On a kernel without ip_vs, "auto" picks nftables and says why.
func TestAutoBackendChoiceOnThisKernel(t *testing.T) {
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		t.Skip("skipping: this kernel has ip_vs; auto would choose it")
	}
	ns := kernelNS(t)
	cfg := DefaultConfig()
	cfg.Services = []ServiceConfig{{Name: "a", Address: "10.9.9.1:80", RealServers: []RealServerConfig{{Address: "10.9.0.1"}}}}
	m, err := New(cfg, Options{NetNS: ns.Path})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if c := m.Backend(); c.Name != "nftables" || !strings.Contains(c.Reason, "ip_vs unavailable") {
		t.Fatalf("auto chose %+v", c)
	}
	cfg.Services[0].Scheduler = "wlc"
	if _, err := New(cfg, Options{NetNS: ns.Path}); err == nil || !strings.Contains(err.Error(), "supported by: ipvs") {
		t.Fatalf("wlc without ip_vs: %v", err)
	}
}

// Traffic through the rules for IPv6 (dnat ip6) and through the output hook
// (a client on the director itself): a one-namespace setup where the VIP
// and the real servers are local addresses.
func TestNFTablesIPv6TrafficFromTheDirector(t *testing.T) {
	ns := kernelNS(t)
	for _, a := range []string{"2001:db8:9::100/128", "2001:db8:9::11/128", "2001:db8:9::12/128"} {
		if _, err := ns.IP("addr", "add", a, "dev", "lo", "nodad"); err != nil {
			t.Fatal(err)
		}
	}
	for i, a := range []string{"[2001:db8:9::11]:8080", "[2001:db8:9::12]:8080"} {
		s, err := lvstest.StartNameServer(ns, fmt.Sprintf("rs%d", i+1), a)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Stop()
	}
	b := NewNFTables("replicad_lvs", ns.Path, nil)
	key, _ := model.ParseKey("tcp/[2001:db8:9::100]:80")
	svc := model.Service{Key: key, Scheduler: model.RR, RealServers: []model.RealServer{
		{Addr: netip.MustParseAddrPort("[2001:db8:9::11]:8080"), Weight: 1, Forward: model.NAT},
		{Addr: netip.MustParseAddrPort("[2001:db8:9::12]:8080"), Weight: 1, Forward: model.NAT},
	}}
	reconcileOnce(t, b, []model.Service{svc})
	var got []string
	for range 4 {
		err := ns.Do(func() error {
			c, err := net.DialTimeout("tcp", "[2001:db8:9::100]:80", 3*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			got = append(got, strings.TrimSpace(line))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(got, " ") != "rs1 rs2 rs1 rs2" {
		t.Fatalf("rr over IPv6 from the director: %v", got)
	}
	obs, _ := b.Observe(context.Background())
	if obs[0].Stats.Connections != 4 {
		t.Fatalf("counters: %+v", obs[0].Stats)
	}
}
