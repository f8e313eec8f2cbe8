package fence

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/fence/fencetest"
	"github.com/replicad/replicad/internal/testenv"
)

// Interop with the real fence_ipmilan (and the ipmitool it runs) against
// OpenIPMI's ipmi_sim, one simulated BMC per test on its own loopback port.

func startBMC(t *testing.T, cfg fencetest.IPMIConfig) *fencetest.IPMISim {
	t.Helper()
	testenv.RequireTool(t, "ipmi_sim", "openipmi")
	testenv.RequireTool(t, "ipmitool", "ipmitool")
	testenv.RequireTool(t, "fence_ipmilan", "fence-agents")
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sim, err := fencetest.StartIPMISim(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Stop() })
	return sim
}

// ipmiDevice is a fence_ipmilan device for sim. power_wait=0 drops the
// agent's fixed 2s pause after a power command (verification does not need
// it); ipmitool_timeout=1 halves ipmitool's retry time.
func ipmiDevice(r *rig, sim *fencetest.IPMISim, name, host string, mod ...func(*DeviceConfig)) {
	d := DefaultDevice()
	d.Name, d.Command, d.Hosts = name, "fence_ipmilan", []string{host}
	d.Params = sim.Params()
	d.Params["power_wait"] = "0"
	d.Params["ipmitool_timeout"] = "1"
	d.Timeout, d.Retries, d.RetryInterval = 30*time.Second, 0, 0
	d.VerifyTimeout, d.VerifyInterval = 10*time.Second, 200*time.Millisecond
	for _, m := range mod {
		m(&d)
	}
	r.cfg.Devices = append(r.cfg.Devices, d)
}

func TestIPMIStatusVerifiedOffOnReboot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hookLog := filepath.Join(dir, "hooks")
	sim := startBMC(t, fencetest.IPMIConfig{Dir: dir, OnPowerOff: "echo off >> " + hookLog, OnPowerOn: "echo on >> " + hookLog})
	r := newRig(t)
	ipmiDevice(r, sim, "ipmi-b", "node-b")
	f := r.start(Options{})
	ctx := context.Background()

	tr, err := f.Test(ctx, "ipmi-b")
	if err != nil || !tr.OK || tr.Targets[0].State != "on" {
		t.Fatalf("Test = %+v %v", tr, err)
	}
	res, err := f.Fence(ctx, req("node-b", ActionOff))
	if err != nil {
		t.Fatal(err)
	}
	if on, _ := sim.Power(); on {
		t.Fatal("BMC power still on after a successful off")
	}
	if last := res.Steps[len(res.Steps)-1]; last.Action != "verify-off" || last.Error != "" {
		t.Fatalf("off not verified: %+v", res.Steps)
	}
	if tr, _ := f.Test(ctx, "ipmi-b"); tr.Targets[0].State != "off" {
		t.Fatalf("status after off = %+v", tr)
	}
	if _, err := f.Fence(ctx, req("node-b", ActionOn)); err != nil {
		t.Fatal(err)
	}
	if on, _ := sim.Power(); !on {
		t.Fatal("BMC power off after on")
	}
	res, err = f.Fence(ctx, req("node-b", ActionReboot))
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, s := range res.Steps {
		steps = append(steps, s.Action)
	}
	if strings.Join(steps, ",") != "off,verify-off,on" {
		t.Fatalf("reboot steps %v", steps)
	}
	if on, _ := sim.Power(); !on {
		t.Fatal("BMC power off after reboot")
	}
	// The chassis hooks ran in order: this is how a namespace test kills
	// and restarts a node's replicad.
	b, _ := os.ReadFile(hookLog)
	if got := strings.Fields(string(b)); strings.Join(got, ",") != "off,on,off,on" {
		t.Fatalf("chassis hooks ran %v, want off,on,off,on", got)
	}
	ops := f.History(HistoryQuery{Target: "node-b"})
	if len(ops) != 3 || ops[0].Action != ActionReboot || ops[0].Devices[0] != "ipmi-b" {
		t.Fatalf("history %+v", ops)
	}
}

func TestIPMIWrongPasswordIsAClearFailure(t *testing.T) {
	t.Parallel()
	sim := startBMC(t, fencetest.IPMIConfig{})
	r := newRig(t)
	ipmiDevice(r, sim, "ipmi-b", "node-b", func(d *DeviceConfig) { d.Params["password"] = "wrong" })
	f := r.start(Options{})
	_, err := f.Fence(context.Background(), req("node-b", ActionOff))
	if !errors.Is(err, ErrFenceFailed) || !errors.Is(err, ErrAgentFailed) || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want an agent failure that is not a timeout", err)
	}
	if !strings.Contains(err.Error(), "fence_ipmilan off (port \"node-b\"): exit 1 (generic error): Failed: Unable to obtain correct plug status") {
		t.Fatalf("err = %v", err)
	}
	if on, _ := sim.Power(); !on {
		t.Fatal("power changed with a wrong password")
	}
}

func TestIPMIUnansweringBMCIsATimeoutFailure(t *testing.T) {
	t.Parallel()
	sim := startBMC(t, fencetest.IPMIConfig{})
	r := newRig(t)
	ipmiDevice(r, sim, "ipmi-b", "node-b", func(d *DeviceConfig) { d.Timeout = 2 * time.Second })
	f := r.start(Options{})
	if err := sim.Pause(); err != nil {
		t.Fatal(err)
	}
	_, err := f.Fence(context.Background(), req("node-b", ActionOff))
	if !errors.Is(err, ErrFenceFailed) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want a timeout failure", err)
	}
	if !strings.Contains(err.Error(), "fence_ipmilan off: process group killed: fence agent timed out: no answer within 2s") {
		t.Fatalf("err = %v", err)
	}
	sim.Resume()
}

// The shape of the namespace integration test, without replicad: a node is
// a network namespace with a process in it; its BMC's power-off hook kills
// everything in the namespace; fencing the node through fence_ipmilan
// really kills the process, and the history records it.
func TestIPMIFencingKillsTheNodesProcesses(t *testing.T) {
	testenv.RequireRoot(t)
	ipPath := testenv.RequireTool(t, "ip", "iproute2")
	t.Parallel()
	ns := "rpdfence-" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command(ipPath, "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() {
		exec.Command("sh", "-c", fencetest.NetnsKillCommand(ns)).Run()
		if out, err := exec.Command(ipPath, "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	node := exec.Command(ipPath, "netns", "exec", ns, "sleep", "1000")
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- node.Wait() }()
	t.Cleanup(func() { node.Process.Kill() })

	sim := startBMC(t, fencetest.IPMIConfig{OnPowerOff: fencetest.NetnsKillCommand(ns)})
	r := newRig(t)
	ipmiDevice(r, sim, "ipmi-n", "node-n")
	f := r.start(Options{})
	rq := req("node-n", ActionOff)
	rq.Origin, rq.Reason = "node-m/crm", "node-n lost quorum"
	if _, err := f.Fence(context.Background(), rq); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("node process ended with %v, want SIGKILL", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the node's process survived its fencing")
	}
	ops := f.History(HistoryQuery{Target: "node-n"})
	if len(ops) != 1 || ops[0].State != StateSuccess || ops[0].Requesters[0].Reason != "node-n lost quorum" {
		t.Fatalf("history %+v", ops)
	}

	// A BMC can also live inside a namespace (IPMIConfig.Wrap); the
	// namespace's loopback must be up.
	if out, err := exec.Command(ipPath, "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	inner := startBMC(t, fencetest.IPMIConfig{Wrap: []string{ipPath, "netns", "exec", ns}})
	p := inner.Params()
	out, err := exec.Command(ipPath, "netns", "exec", ns, "ipmitool", "-I", "lan", "-H", p["ip"], "-p", p["ipport"],
		"-U", p["username"], "-P", p["password"], "chassis", "power", "status").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Chassis Power is on") {
		t.Fatalf("ipmitool inside %s: %v: %s", ns, err, out)
	}
}
