package fence

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/fence/agentproto"
	"github.com/replicad/replicad/fence/fencetest"
	"github.com/replicad/replicad/internal/clock"
	"github.com/replicad/replicad/internal/testenv"
)

// redfishDevice adds a native Redfish device for srv to the rig.
func redfishDevice(r *rig, srv *fencetest.RedfishServer, name string, hosts, hostMap []string, mod ...func(*DeviceConfig)) {
	d := DefaultDevice()
	d.Name, d.Agent, d.Hosts, d.HostMap = name, AgentRedfish, hosts, hostMap
	d.Redfish = RedfishConfig{Address: srv.URL, Username: srv.User, Password: srv.Password, CAFile: srv.CAFile}
	d.Timeout, d.RetryInterval, d.VerifyTimeout, d.VerifyInterval = 10*time.Second, 0, time.Second, 10*time.Millisecond
	for _, m := range mod {
		m(&d)
	}
	r.cfg.Devices = append(r.cfg.Devices, d)
}

func newRedfish(t *testing.T, ids ...string) *fencetest.RedfishServer {
	srv, err := fencetest.NewRedfishServer(t.TempDir(), ids...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func TestRedfishOffVerifiedOnAndReboot(t *testing.T) {
	srv := newRedfish(t)
	srv.SetOffLag("1", 2) // PowerState lags two reads behind ForceOff
	r := newRig(t)
	redfishDevice(r, srv, "bmc-b", []string{"node-b"}, nil)
	f := r.start(Options{})
	ctx := context.Background()

	res, err := f.Fence(ctx, req("node-b", ActionOff))
	if err != nil {
		t.Fatal(err)
	}
	if srv.Power("1") != "Off" || res.Steps[len(res.Steps)-1].Detail != "off after 3 status check(s)" {
		t.Fatalf("power %s, steps %+v", srv.Power("1"), res.Steps)
	}
	if _, err := f.Fence(ctx, req("node-b", ActionOn)); err != nil || srv.Power("1") != "On" {
		t.Fatalf("on: %v, power %s", err, srv.Power("1"))
	}
	if _, err := f.Fence(ctx, req("node-b", ActionReboot)); err != nil || srv.Power("1") != "On" {
		t.Fatalf("reboot: %v, power %s", err, srv.Power("1"))
	}
	var resets []string
	for _, rq := range srv.Requests() {
		if strings.HasPrefix(rq, "POST ") {
			resets = append(resets, rq[strings.LastIndex(rq, " ")+1:])
		}
	}
	if got := strings.Join(resets, ","); got != "ForceOff,On,ForceOff,On" {
		t.Fatalf("resets %s, want ForceOff,On,ForceOff,On", got)
	}
	tr, err := f.Test(ctx, "bmc-b")
	if err != nil || !tr.OK || tr.Targets[0].State != "on" {
		t.Fatalf("Test = %+v %v", tr, err)
	}
}

func TestRedfishLyingBMCIsNotFenced(t *testing.T) {
	srv := newRedfish(t)
	srv.SetIgnoreOff("1", true)
	r := newRig(t)
	redfishDevice(r, srv, "bmc-b", []string{"node-b"}, nil, func(d *DeviceConfig) { d.Retries = 0 })
	f := r.start(Options{})
	_, err := f.Fence(context.Background(), req("node-b", ActionOff))
	if !errors.Is(err, ErrFenceFailed) || !strings.Contains(err.Error(), "power status did not report off within 1s") {
		t.Fatalf("err = %v", err)
	}
}

func TestRedfishWrongPasswordIsLoginDenied(t *testing.T) {
	srv := newRedfish(t)
	r := newRig(t)
	redfishDevice(r, srv, "bmc-b", []string{"node-b"}, nil, func(d *DeviceConfig) { d.Redfish.Password = "wrong"; d.Retries = 0 })
	f := r.start(Options{})
	_, err := f.Fence(context.Background(), req("node-b", ActionOff))
	if !errors.Is(err, ErrLoginDenied) || !strings.Contains(err.Error(), "401 Unauthorized: The authentication credentials included with this request are missing or invalid.") {
		t.Fatalf("err = %v", err)
	}
	tr, _ := f.Test(context.Background(), "bmc-b")
	if tr.OK || !strings.Contains(tr.Monitor, "refused the login") {
		t.Fatalf("Test = %+v", tr)
	}
	if srv.Power("1") != "On" {
		t.Fatal("power changed with a wrong password")
	}
}

// Without the CA the certificate does not verify; insecure must be asked
// for explicitly.
func TestRedfishCertificateVerification(t *testing.T) {
	srv := newRedfish(t)
	r := newRig(t)
	redfishDevice(r, srv, "noca", []string{"node-a"}, nil, func(d *DeviceConfig) { d.Redfish.CAFile = "" })
	redfishDevice(r, srv, "insecure", []string{"node-b"}, nil, func(d *DeviceConfig) { d.Redfish.CAFile, d.Redfish.Insecure = "", true })
	f := r.start(Options{})
	tr, _ := f.Test(context.Background(), "noca")
	if tr.OK || !strings.Contains(tr.Monitor, "certificate signed by unknown authority") {
		t.Fatalf("Test without CA = %+v", tr)
	}
	if tr, _ := f.Test(context.Background(), "insecure"); !tr.OK {
		t.Fatalf("Test insecure = %+v", tr)
	}
}

// A BMC that takes the connection but never answers: the request is
// abandoned when the device timeout passes on the injected clock.
func TestRedfishHangingBMCIsATimeout(t *testing.T) {
	srv := newRedfish(t)
	srv.Hang()
	r := newRig(t)
	redfishDevice(r, srv, "bmc-b", []string{"node-b"}, nil, func(d *DeviceConfig) { d.Retries = 0 })
	fc := clock.NewFake(time.Unix(1000, 0))
	f := r.start(Options{Clock: fc})
	ch := fenceAsync(t, f, req("node-b", ActionOff))
	waitFor(t, "a request to hang", func() bool { return srv.Hanging() == 1 })
	fc.Advance(10 * time.Second)
	got := recv(t, ch)
	if !errors.Is(got.err, ErrTimeout) || !strings.Contains(got.err.Error(), "request abandoned") {
		t.Fatalf("err = %v", got.err)
	}
}

// One BMC, several systems: the host-map port picks the system by Id.
func TestRedfishPortSelectsSystem(t *testing.T) {
	srv := newRedfish(t, "blade1", "blade2")
	r := newRig(t)
	redfishDevice(r, srv, "chassis", nil, []string{"node-a:blade1", "node-b:blade2"})
	redfishDevice(r, srv, "ambiguous", []string{"node-c"}, nil, func(d *DeviceConfig) { d.Retries = 0 })
	f := r.start(Options{})
	if _, err := f.Fence(context.Background(), req("node-b", ActionOff)); err != nil {
		t.Fatal(err)
	}
	if srv.Power("blade1") != "On" || srv.Power("blade2") != "Off" {
		t.Fatalf("blade1 %s blade2 %s", srv.Power("blade1"), srv.Power("blade2"))
	}
	// A host-list node means "the BMC's system", which is ambiguous here.
	_, err := f.Fence(context.Background(), req("node-c", ActionOff))
	if err == nil || !strings.Contains(err.Error(), `2 systems (/redfish/v1/Systems/blade1, /redfish/v1/Systems/blade2) and no port to choose one; set redfish.system or a host-map`) {
		t.Fatalf("err = %v", err)
	}
	plugs, err := f.List(context.Background(), "chassis")
	if err != nil || len(plugs) != 2 || plugs[1].Port != "blade2" {
		t.Fatalf("List = %v %v", plugs, err)
	}
}

func TestRedfishMetadataIsValid(t *testing.T) {
	b, err := RedfishMetadata().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m, err := agentproto.ParseMetadata(b)
	if err != nil || !m.Supports("off") || !m.Supports("status") {
		t.Fatalf("%v %+v", err, m)
	}
}

// Interop: ClusterLabs' fence_redfish, run through the exec agent, fences
// the same test service (which checks that the service is a faithful
// enough Redfish for real clients).
func TestFenceRedfishAgentAgainstTestService(t *testing.T) {
	path := testenv.RequireTool(t, "fence_redfish", "fence-agents")
	srv := newRedfish(t)
	r := newRig(t)
	d := DefaultDevice()
	d.Name, d.Command, d.Hosts, d.HostArgument = "fr", path, []string{"node-b"}, "none"
	d.Params = map[string]string{"ip": "127.0.0.1", "ipport": strconv.Itoa(srv.Port()), "username": srv.User, "password": srv.Password, "ssl_insecure": "1", "power_wait": "0"}
	d.Timeout, d.VerifyTimeout, d.VerifyInterval = 30*time.Second, 5*time.Second, 100*time.Millisecond
	r.cfg.Devices = append(r.cfg.Devices, d)
	f := r.start(Options{})
	if _, err := f.Fence(context.Background(), req("node-b", ActionReboot)); err != nil {
		t.Fatal(err)
	}
	var resets []string
	for _, rq := range srv.Requests() {
		if strings.HasPrefix(rq, "POST ") {
			resets = append(resets, rq[strings.LastIndex(rq, " ")+1:])
		}
	}
	if strings.Join(resets, ",") != "ForceOff,On" || srv.Power("1") != "On" {
		t.Fatalf("resets %v power %s", resets, srv.Power("1"))
	}
}

// Links from the BMC are followed only to the BMC itself.
func TestRedfishRefusesLinksToOtherHosts(t *testing.T) {
	srv := newRedfish(t)
	a, err := NewRedfishAgent(RedfishConfig{Address: srv.URL, Username: srv.User, Password: srv.Password, CAFile: srv.CAFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	var out map[string]any
	if err := a.do(ctx, "GET", srv.URL+"/redfish/v1", nil, &out); err != nil {
		t.Fatalf("absolute link to the BMC itself: %v", err)
	}
	for _, link := range []string{"https://evil.example/redfish/v1", "http://" + srv.Host() + "/redfish/v1", "//evil.example/x"} {
		if err := a.do(ctx, "GET", link, nil, &out); !errors.Is(err, ErrAgentFailed) || !strings.Contains(err.Error(), "want a path on "+srv.Host()) {
			t.Errorf("link %q: %v", link, err)
		}
	}
}
