package model

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestKeyRoundTrip(t *testing.T) {
	for _, s := range []string{
		"tcp/10.0.0.1:80",
		"udp/[2001:db8::1]:53",
		"tcp/10.0.0.1:0",
		"fwmark/7/ipv4",
		"fwmark/4294967295/ipv6",
	} {
		k, err := ParseKey(s)
		if err != nil {
			t.Fatalf("ParseKey(%q): %v", s, err)
		}
		if got := k.String(); got != s {
			t.Errorf("ParseKey(%q).String() = %q", s, got)
		}
	}
}

func TestParseKeyRejects(t *testing.T) {
	for _, s := range []string{
		"", "tcp", "sctp/10.0.0.1:80", "tcp/10.0.0.1", "tcp/10.0.0.1:99999",
		"fwmark/0/ipv4", "fwmark/x/ipv4", "fwmark/7/ipx", "fwmark/7", "a/b/c/d",
	} {
		if _, err := ParseKey(s); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseKey(%q) err = %v, want ErrBadKey", s, err)
		}
	}
}

func TestParseKeyUnmapsV4InV6(t *testing.T) {
	k, err := ParseKey("tcp/[::ffff:10.0.0.1]:80")
	if err != nil {
		t.Fatal(err)
	}
	if k.Family != IPv4 || k.Addr != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("got %+v, want unmapped IPv4", k)
	}
}

func svc(sched Scheduler, fwd Forward) Service {
	return Service{
		Key:       Key{Family: IPv4, Protocol: TCP, Addr: netip.MustParseAddr("10.0.0.1"), Port: 80},
		Scheduler: sched,
		RealServers: []RealServer{
			{Addr: netip.MustParseAddrPort("10.0.1.1:80"), Weight: 1, Forward: fwd},
		},
	}
}

// The rule: a scheduler a backend cannot do gets a clear error naming
// the backends that can.
func TestCapabilityErrorNamesBackendsThatCan(t *testing.T) {
	cases := []struct {
		backend string
		s       Service
		feature string
		by      []string
	}{
		{BackendNFTables, svc(LC, NAT), "scheduler", []string{"ipvs"}},
		{BackendNFTables, svc(WLC, NAT), "scheduler", []string{"ipvs"}},
		{BackendNFTables, svc(MH, NAT), "scheduler", []string{"ipvs"}},
		{BackendIPVS, svc(Random, NAT), "scheduler", []string{"nftables"}},
		{BackendNFTables, svc(RR, DR), "forwarding", []string{"ipvs"}},
		{BackendNFTables, svc(RR, Tunnel), "forwarding", []string{"ipvs"}},
		{BackendIPVS, svc(Scheduler("fo"), NAT), "scheduler", nil},
	}
	for _, c := range cases {
		err := CheckBackend(c.backend, []Service{c.s})
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("%s %s/%s: err = %v, want ErrUnsupported", c.backend, c.s.Scheduler, c.s.RealServers[0].Forward, err)
		}
		var ue *UnsupportedError
		if !errors.As(err, &ue) {
			t.Fatalf("not an *UnsupportedError: %T", err)
		}
		if ue.Feature != c.feature || strings.Join(ue.SupportedBy, ",") != strings.Join(c.by, ",") {
			t.Errorf("%s: feature=%s by=%v, want %s by %v", c.backend, ue.Feature, ue.SupportedBy, c.feature, c.by)
		}
		msg := err.Error()
		if !strings.Contains(msg, c.backend) {
			t.Errorf("message %q does not name the backend", msg)
		}
		for _, b := range c.by {
			if !strings.Contains(msg, "supported by: "+b) {
				t.Errorf("message %q does not name %s", msg, b)
			}
		}
	}
}

func TestEverySchedulerHasABackendExceptUnknown(t *testing.T) {
	for _, s := range Schedulers {
		ok := false
		for _, b := range Backends {
			if CheckBackend(b.Name, []Service{svc(s, NAT)}) == nil {
				ok = true
			}
		}
		if !ok {
			t.Errorf("scheduler %s: no backend can run it", s)
		}
	}
	// The issue lists these as the IPVS set and these as the nftables minimum.
	for _, s := range []Scheduler{RR, WRR, LC, WLC, SED, NQ, SH, DH, LBLC, LBLCR, MH} {
		if err := CheckBackend(BackendIPVS, []Service{svc(s, NAT)}); err != nil {
			t.Errorf("ipvs %s: %v", s, err)
		}
	}
	for _, s := range []Scheduler{RR, WRR, SH, DH, Random} {
		if err := CheckBackend(BackendNFTables, []Service{svc(s, NAT)}); err != nil {
			t.Errorf("nftables %s: %v", s, err)
		}
	}
	if err := CheckBackend("lvs9000", nil); !errors.Is(err, ErrUnknownBackend) {
		t.Errorf("unknown backend: %v", err)
	}
}

func TestNormalizeAndActive(t *testing.T) {
	s := Service{RealServers: []RealServer{
		{Addr: netip.MustParseAddrPort("10.0.1.3:80"), Weight: 0},
		{Addr: netip.MustParseAddrPort("10.0.1.1:80"), Weight: 2},
		{Addr: netip.MustParseAddrPort("10.0.1.2:80"), Weight: 1},
	}}
	c := s.Clone()
	c.Normalize()
	if c.RealServers[0].Addr.Addr().String() != "10.0.1.1" || s.RealServers[0].Addr.Addr().String() != "10.0.1.3" {
		t.Fatalf("Normalize sorted %v; Clone must not alias: %v", c.RealServers, s.RealServers)
	}
	if a := c.Active(); len(a) != 2 || a[0].Weight != 2 {
		t.Fatalf("Active = %v", a)
	}
	if !(Persistence{Timeout: time.Second}).Enabled() || (Persistence{}).Enabled() {
		t.Fatal("Persistence.Enabled")
	}
}
