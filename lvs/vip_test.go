package lvs

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"

	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/lvs/lvstest"
)

func TestVIPStateEvaluation(t *testing.T) {
	v, err := NewVIP(VIPConfig{Name: "v", Address: "10.0.0.100/24", Interface: "eth0"}, VIPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := func(s string) netlink.Addr {
		p := netip.MustParsePrefix(s)
		return netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}
	}
	up := &netlink.LinkAttrs{Flags: net.FlagUp, OperState: netlink.OperUp}
	cases := []struct {
		attrs   *netlink.LinkAttrs
		addrs   []netlink.Addr
		healthy bool
		problem string
	}{
		{up, []netlink.Addr{addr("10.0.0.1/24"), addr("10.0.0.100/24")}, true, ""},
		{up, []netlink.Addr{addr("10.0.0.1/24")}, false, "10.0.0.100 is not on eth0"},
		{&netlink.LinkAttrs{Flags: net.FlagUp, OperState: netlink.OperLowerLayerDown}, []netlink.Addr{addr("10.0.0.100/24")}, false, "link eth0 is down (lower-layer-down)"},
		{&netlink.LinkAttrs{OperState: netlink.OperDown}, nil, false, "not on eth0 and the link is down"},
		{&netlink.LinkAttrs{Flags: net.FlagUp, OperState: netlink.OperUnknown}, []netlink.Addr{addr("10.0.0.100/32")}, true, ""}, // lo, some virtual links
	}
	for i, c := range cases {
		st := v.evaluate(c.attrs, c.addrs)
		if st.Healthy() != c.healthy || !strings.Contains(st.Problem, c.problem) {
			t.Errorf("case %d: %+v", i, st)
		}
	}
	if _, err := NewVIP(VIPConfig{Name: "v", Address: "10.0.0.100", Interface: "eth0"}, VIPOptions{}); err == nil {
		t.Error("a VIP without prefix length was accepted")
	}
}

// pair returns two namespaces joined by a veth pair (a0 in a, b0 in b).
func pair(t *testing.T, tag string) (*lvstest.NS, *lvstest.NS) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "ip", "iproute2")
	a, err := lvstest.AddNS(fmt.Sprintf("rpdlvs-%d-%sa", os.Getpid(), tag))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Delete() })
	b, err := lvstest.AddNS(fmt.Sprintf("rpdlvs-%d-%sb", os.Getpid(), tag))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Delete() })
	for _, cmd := range [][]string{
		{"link", "add", "a0", "type", "veth", "peer", "name", "b0", "netns", b.Name},
		{"addr", "add", "192.0.2.1/24", "dev", "a0"},
		{"addr", "add", "2001:db8:77::1/64", "dev", "a0", "nodad"},
		{"link", "set", "a0", "up"},
	} {
		if _, err := a.IP(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	for _, cmd := range [][]string{
		{"addr", "add", "192.0.2.2/24", "dev", "b0"},
		{"addr", "add", "2001:db8:77::2/64", "dev", "b0", "nodad"},
		{"link", "set", "b0", "up"},
	} {
		if _, err := b.IP(cmd...); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.WaitLinkUp("a0"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitLinkUp("b0"); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// waitNeigh polls `ip neigh` in ns until addr resolves to want (bounded
// wait, not a timing assertion).
func waitNeigh(t *testing.T, ns *lvstest.NS, addr netip.Addr, want net.HardwareAddr) string {
	t.Helper()
	var line string
	for range 100 {
		hw, l, err := ns.Neighbour(addr)
		if err != nil {
			t.Fatal(err)
		}
		line = l
		if hw.String() == want.String() {
			return l
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: neighbour entry for %s is %q, want lladdr %s", ns.Name, addr, line, want)
	return ""
}

// Acquire adds the address without DAD and announces it so that a
// neighbour with a stale entry (pointing at another MAC) updates it; Watch
// sees the address go and the link go down; Release removes it.
func TestVIPAcquireAnnounceWatchRelease(t *testing.T) {
	for _, c := range []struct{ name, vip, peer string }{{"ipv4", "192.0.2.100/24", "192.0.2.2"}, {"ipv6", "2001:db8:77::100/64", "2001:db8:77::2"}} {
		t.Run(c.name, func(t *testing.T) {
			a, b := pair(t, c.name[3:])
			vipAddr := netip.MustParsePrefix(c.vip).Addr()
			// b believes the VIP lives at a made-up MAC, as after a failover.
			if _, err := b.IP("neigh", "replace", vipAddr.String(), "lladdr", "02:00:00:00:00:99", "dev", "b0", "nud", "stale"); err != nil {
				t.Fatal(err)
			}
			v, err := NewVIP(VIPConfig{Name: "v", Address: c.vip, Interface: "a0", ARPCount: 3, ARPInterval: 200 * time.Millisecond}, VIPOptions{NetNS: a.Path})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			var mu sync.Mutex
			var states []VIPState
			ctx, cancel := context.WithCancel(context.Background())
			watchDone := make(chan error, 1)
			go func() {
				watchDone <- v.Watch(ctx, func(s VIPState) {
					mu.Lock()
					states = append(states, s)
					mu.Unlock()
				})
			}()
			if err := v.Acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := v.Acquire(context.Background()); err != nil {
				t.Fatalf("second Acquire must be a no-op: %v", err)
			}
			out, _ := a.IP("addr", "show", "dev", "a0")
			var line string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, " "+c.vip+" ") {
					line = l
				}
			}
			if line == "" || strings.Contains(line, "tentative") {
				t.Fatalf("address not added or tentative (DAD not disabled):\n%s", out)
			}
			mac, err := a.MAC("a0")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("peer after announcement: %s", waitNeigh(t, b, vipAddr, mac))
			if st, err := v.Check(context.Background()); err != nil || !st.Healthy() {
				t.Fatalf("Check after Acquire: %+v %v", st, err)
			}
			if _, err := a.IP("link", "set", "a0", "down"); err != nil {
				t.Fatal(err)
			}
			waitState(t, &mu, &states, func(s VIPState) bool { return !s.LinkUp })
			if _, err := a.IP("link", "set", "a0", "up"); err != nil {
				t.Fatal(err)
			}
			if err := v.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := v.Release(context.Background()); err != nil {
				t.Fatalf("second Release must be a no-op: %v", err)
			}
			waitState(t, &mu, &states, func(s VIPState) bool { return !s.Present })
			cancel()
			<-watchDone
			mu.Lock()
			defer mu.Unlock()
			if !states[0].Healthy() && !states[1].Healthy() {
				t.Errorf("Watch never reported the VIP healthy: %+v", states)
			}
		})
	}
}

func waitState(t *testing.T, mu *sync.Mutex, states *[]VIPState, cond func(VIPState) bool) {
	t.Helper()
	for range 100 {
		mu.Lock()
		for _, s := range *states {
			if cond(s) {
				mu.Unlock()
				return
			}
		}
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("Watch did not report the change; saw %+v", *states)
}

func TestVIPMissingInterface(t *testing.T) {
	a, _ := pair(t, "x")
	v, err := NewVIP(VIPConfig{Name: "v", Address: "192.0.2.100/24", Interface: "nosuch0"}, VIPOptions{NetNS: a.Path})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Acquire(context.Background()); err == nil || !strings.Contains(err.Error(), "no such interface") {
		t.Fatalf("Acquire on a missing interface: %v", err)
	}
}

// The DR helper puts the VIP on lo and stops the real server from
// answering ARP for it; undo restores both.
func TestDRRealServer(t *testing.T) {
	a, b := pair(t, "dr")
	vip := netip.MustParseAddr("192.0.2.100")
	resolve := func() error {
		var err error
		a.Do(func() error {
			ifi, e := net.InterfaceByName("a0")
			if e != nil {
				err = e
				return nil
			}
			c, e := arp.Dial(ifi)
			if e != nil {
				err = e
				return nil
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Second))
			_, err = c.Resolve(vip)
			return nil
		})
		return err
	}
	undo, err := ConfigureDRRealServer(b.Path, []netip.Addr{vip, netip.MustParseAddr("2001:db8:77::100")})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := b.IP("addr", "show", "dev", "lo")
	if !strings.Contains(out, "192.0.2.100/32") || !strings.Contains(out, "2001:db8:77::100/128") {
		t.Fatalf("VIPs not on lo:\n%s", out)
	}
	for key, want := range map[string]string{"net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2"} {
		got, _ := b.Exec("sysctl", "-n", key)
		if strings.TrimSpace(got) != want {
			t.Errorf("%s = %q in the namespace, want %s", key, got, want)
		}
		host, _ := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
		if key == "net.ipv4.conf.all.arp_ignore" && strings.TrimSpace(string(host)) == "1" && strings.TrimSpace(got) == "1" {
			t.Logf("note: the host itself also has %s=1", key)
		}
	}
	if err := resolve(); err == nil {
		t.Fatal("the real server answered ARP for the VIP on its lo")
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	out, _ = b.IP("addr", "show", "dev", "lo")
	if strings.Contains(out, "192.0.2.100") {
		t.Fatalf("undo left the VIP on lo:\n%s", out)
	}
	if got, _ := b.Exec("sysctl", "-n", "net.ipv4.conf.all.arp_ignore"); strings.TrimSpace(got) != "0" {
		t.Errorf("undo left arp_ignore = %q", got)
	}
	// Control: without arp_ignore, a VIP on lo is answered (which is
	// exactly what breaks DR).
	b.IP("addr", "add", "192.0.2.100/32", "dev", "lo")
	if err := resolve(); err != nil {
		t.Fatalf("control: without arp_ignore the VIP should resolve: %v", err)
	}
}

// Checks run in the manager's namespace, exec'd commands included.
func TestExecCheckRunsInTheNamespace(t *testing.T) {
	a, _ := pair(t, "ex")
	cc := CheckConfig{Type: "exec", Command: []string{"sh", "-c", "ip -o addr show dev a0 | grep -q 192.0.2.1/24"}, Interval: 5 * time.Second, Timeout: 5 * time.Second}
	cs := spec(t, "192.0.2.2:80", cc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := newChecker(cs, "svc", a.Path).Check(ctx); err != nil {
		t.Fatalf("in the namespace: %v", err)
	}
	if err := newChecker(cs, "svc", "").Check(ctx); err == nil {
		t.Fatal("outside the namespace the command found the namespace's interface")
	}
}
