package lvs

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/replicad/replicad/lvs/model"
)

func TestChooseBackend(t *testing.T) {
	noIPVS := errors.New("/proc/net/ip_vs absent and the IPVS netlink family is missing")
	svc := func(s model.Scheduler, f model.Forward) []model.Service {
		return []model.Service{{Key: mustKey("tcp/10.0.0.1:80"), Scheduler: s, RealServers: []model.RealServer{nat("10.0.1.1:80", 1)}}}
	}
	dr := svc(model.RR, model.DR)
	dr[0].RealServers[0].Forward = model.DR
	cases := []struct {
		name     string
		setting  string
		ipvsErr  error
		services []model.Service
		want     string
		reason   string
		err      error
		errText  string
	}{
		{"auto prefers ipvs", "auto", nil, svc(model.WLC, model.NAT), "ipvs", "ip_vs is available", nil, ""},
		{"auto without ip_vs", "auto", noIPVS, svc(model.WRR, model.NAT), "nftables", "ip_vs unavailable (/proc/net/ip_vs absent", nil, ""},
		{"auto, config needs random", "auto", nil, svc(model.Random, model.NAT), "nftables", "ip_vs is available but cannot run the configuration (service tcp/10.0.0.1:80: scheduler \"random\"", nil, ""},
		{"auto without ip_vs, config needs lc", "auto", noIPVS, svc(model.LC, model.NAT), "", "", model.ErrUnsupported, "supported by: ipvs"},
		{"auto without ip_vs, config needs dr", "auto", noIPVS, dr, "", "", model.ErrUnsupported, "forwarding \"dr\" not supported by backend nftables; supported by: ipvs"},
		{"ipvs configured, no ip_vs", "ipvs", noIPVS, svc(model.RR, model.NAT), "", "", ErrBackendUnavailable, "ip_vs is not usable"},
		{"ipvs configured, random", "ipvs", nil, svc(model.Random, model.NAT), "", "", model.ErrUnsupported, "supported by: nftables"},
		{"nftables configured", "nftables", nil, svc(model.SH, model.NAT), "nftables", "configured", nil, ""},
		{"nftables configured, wlc", "nftables", nil, svc(model.WLC, model.NAT), "", "", model.ErrUnsupported, "scheduler \"wlc\" not supported by backend nftables; supported by: ipvs"},
	}
	for _, c := range cases {
		got, err := ChooseBackend(c.setting, c.ipvsErr, c.services)
		if c.err != nil {
			if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.errText) {
				t.Errorf("%s: err = %v, want %v containing %q", c.name, err, c.err, c.errText)
			}
			continue
		}
		if err != nil || got.Name != c.want || !strings.Contains(got.Reason, c.reason) {
			t.Errorf("%s: %+v, %v; want %s because %q", c.name, got, err, c.want, c.reason)
		}
	}
}

func TestProbeIPVSOnThisKernel(t *testing.T) {
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		if err := ProbeIPVS(""); err != nil {
			t.Fatalf("ip_vs is loaded but the probe failed: %v", err)
		}
		return
	}
	err := ProbeIPVS("")
	if err == nil {
		t.Skip("ip_vs loaded on demand by the probe (module present); nothing to check")
	}
	if !strings.Contains(err.Error(), "IPVS") {
		t.Fatalf("probe error does not say what is missing: %v", err)
	}
	t.Logf("as expected on this kernel: %v", err)
}
