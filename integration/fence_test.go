package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/fence"
	"github.com/replicad/replicad/fence/fencetest"
	"github.com/replicad/replicad/internal/testenv"
)

// fenceNode is a replicad in its own network namespace with its own
// simulated BMC (ipmi_sim on the management network). The BMC's chassis
// power-off SIGKILLs this node's replicad (by the pid in pidFile: only a
// process the test started), and power-on starts it again if it is not
// running, writing the new pid.
type fenceNode struct {
	*node
	name    string
	bmc     *fencetest.IPMISim
	bmcAddr string
	pidFile string
}

// powerHooks are the chassis script's commands for n.
func (n *fenceNode) powerHooks() (off, on string) {
	pf := n.pidFile
	off = fmt.Sprintf(`if [ -s %[1]s ]; then kill -9 "$(cat %[1]s)"; rm -f %[1]s; fi`, pf)
	argv := append(append([]string{}, n.wrap...), bin("replicad"), "run", "--config", n.config)
	on = fmt.Sprintf(`if ! { [ -s %[1]s ] && kill -0 "$(cat %[1]s)" 2>/dev/null; }; then setsid %[2]s >>%[3]s 2>&1 </dev/null & echo $! > %[1]s; fi`,
		pf, strings.Join(argv, " "), filepath.Join(n.dir, "replicad-after-power-on.log"))
	return off, on
}

// pid is the pid of the node's replicad as the pid file says (0: none).
func (n *fenceNode) pid() int {
	b, _ := os.ReadFile(n.pidFile)
	p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return p
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// fenceConfig writes n's configuration: every node's BMC as an
// fence_ipmilan device, as on a real cluster where each node can fence
// the others.
func (n *fenceNode) writeConfig(t *testing.T, all []*fenceNode) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "node: {name: %s}\ncontrol: {socket: %s}\nmetrics: {listen: \"127.0.0.1:0\"}\nlog: {level: debug}\n", n.name, n.socket)
	fmt.Fprintf(&b, "nbd:\n  listen: [\"tcp://127.0.0.1:0\"]\n")
	fmt.Fprintf(&b, "fence:\n  history-path: %s\n  devices:\n", filepath.Join(n.dir, "fence", "history.log"))
	for _, o := range all {
		p := o.bmc.Params()
		// power_wait=0: no fixed pause after a power command (status
		// verification replaces it); ipmitool_timeout=1: quicker retries.
		fmt.Fprintf(&b, `    - name: bmc-%s
      command: fence_ipmilan
      params: {ip: %s, ipport: "%s", username: %s, password: %s, power_wait: "0", ipmitool_timeout: "1"}
      hosts: [%s]
      timeout: 30s
      retries: 1
      verify-timeout: 10s
      verify-interval: 200ms
`, strings.TrimPrefix(o.name, "node-"), p["ip"], p["ipport"], p["username"], p["password"], o.name)
	}
	if err := os.WriteFile(n.config, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// repctlSplit runs repctl in the node's namespace, keeping stdout apart
// for --json.
func (n *fenceNode) repctlSplit(args ...string) (stdout, stderr string, code int) {
	argv := append(append(append([]string{}, n.wrap...), bin("repctl"), "--socket", n.socket), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		code = -1
		e.WriteString(err.Error())
	}
	return o.String(), e.String(), code
}

// waitAnswers waits until a replicad answers on the node's socket.
func (n *fenceNode) waitAnswers(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, err := n.status(); err == nil && st.Node.Name == n.name {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(n.dir, "replicad-after-power-on.log"))
			t.Fatalf("%s: %s's replicad does not answer\n%s", what, n.name, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Issue 5 end to end: node-a's replicad fences node-b through node-b's BMC
// (fence_ipmilan → ipmi_sim on the management network), which really kills
// node-b's replicad; the result is verified off and node-a's history says
// who asked, why, with which device, and when. Power on brings node-b
// back, and a reboot kills and restarts it again.
func TestFenceNodeThroughItsBMC(t *testing.T) {
	testenv.RequireRoot(t)
	ipPath := testenv.RequireTool(t, "ip", "iproute2")
	testenv.RequireTool(t, "ipmi_sim", "openipmi")
	testenv.RequireTool(t, "ipmitool", "ipmitool")
	testenv.RequireTool(t, "fence_ipmilan", "fence-agents")
	testenv.RequireTool(t, "setsid", "util-linux")

	lan := newTestNet(t, ipPath, "node-a", "node-b")
	var nodes []*fenceNode
	for i, name := range []string{"node-a", "node-b"} {
		dir := t.TempDir()
		n := &fenceNode{
			node:    &node{t: t, dir: dir, config: filepath.Join(dir, "replicad.yaml"), socket: filepath.Join(dir, "control.sock"), wrap: lan.Exec(lan.NS(name))},
			name:    name,
			bmcAddr: fmt.Sprintf("10.99.0.%d", 11+i),
			pidFile: filepath.Join(dir, "replicad.pid"),
		}
		lan.AddMgmtAddr(n.bmcAddr)
		off, on := n.powerHooks()
		// Each BMC has its own address in the management namespace, so
		// both use IPMI's own port.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		sim, err := fencetest.StartIPMISim(ctx, fencetest.IPMIConfig{Dir: t.TempDir(), Addr: n.bmcAddr, Port: 623, Wrap: lan.Exec(lan.Mgmt), OnPowerOff: off, OnPowerOn: on})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sim.Stop() })
		n.bmc = sim
		nodes = append(nodes, n)
	}
	a, b := nodes[0], nodes[1]
	for _, n := range nodes {
		n.writeConfig(t, nodes)
		n.start()
		if err := os.WriteFile(n.pidFile, []byte(strconv.Itoa(n.cmd.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		// A replicad the BMC started (power on) is not the test's child.
		t.Cleanup(func() {
			if p := n.pid(); p > 0 && p != n.cmd.Process.Pid && alive(p) {
				syscall.Kill(p, syscall.SIGKILL)
			}
		})
	}
	firstB := b.cmd.Process.Pid

	out := a.mustRepctl("fence", "list")
	for _, w := range []string{"bmc-a", "bmc-b", "fence_ipmilan", "fenceable nodes: node-a, node-b"} {
		if !strings.Contains(out, w) {
			t.Fatalf("fence list lacks %q:\n%s", w, out)
		}
	}
	if out := a.mustRepctl("fence", "test", "bmc-b"); !strings.Contains(out, "bmc-b: monitor ok; node-b on") {
		t.Fatalf("fence test bmc-b: %s", out)
	}

	// Fence node-b from node-a.
	reason := "integration: node-b stopped answering"
	stdout, stderr, code := a.repctlSplit("fence", "node", "node-b", "--reason", reason, "--json")
	if code != 0 {
		t.Fatalf("fence node node-b: exit %d\n%s%s\nnode-a log:\n%s", code, stdout, stderr, a.log)
	}
	var res fence.Result
	jsonUnmarshal(t, stdout, &res)
	if res.State != fence.StateSuccess || res.Action != fence.ActionOff || strings.Join(res.Devices, ",") != "bmc-b" {
		t.Fatalf("fence result %+v", res)
	}
	var verified bool
	for _, s := range res.Steps {
		verified = verified || (s.Action == "verify-off" && s.Device == "bmc-b" && s.Error == "")
	}
	if !verified {
		t.Fatalf("no verified off in the steps: %+v", res.Steps)
	}
	select {
	case err := <-b.exited:
		b.exited <- err
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("node-b's replicad ended with %v, want SIGKILL", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("node-b's replicad survived its fencing")
	}
	if on, err := b.bmc.Power(); err != nil || on {
		t.Fatalf("node-b's chassis power on=%v (%v) after the fence", on, err)
	}
	if _, err := b.status(); err == nil {
		t.Fatal("node-b still answers on its control socket")
	}
	if _, err := a.status(); err != nil {
		t.Fatalf("node-a (the fencer) is down: %v", err)
	}
	if out := a.mustRepctl("fence", "test", "bmc-b"); !strings.Contains(out, "node-b off") {
		t.Fatalf("fence test bmc-b after the fence: %s", out)
	}

	// Power on (unfence) brings node-b's replicad back; a reboot kills it
	// and starts it again.
	a.mustRepctl("fence", "node", "node-b", "--action", "on", "--reason", "integration: node-b repaired")
	b.waitAnswers(t, "after power on")
	second := b.pid()
	if second == 0 || second == firstB || !alive(second) {
		t.Fatalf("after power on: pid %d (first %d)", second, firstB)
	}
	out = a.mustRepctl("fence", "node", "node-b", "--action", "reboot", "--reason", "integration: reboot node-b")
	if !strings.Contains(out, "reboot node-b: success") {
		t.Fatalf("reboot: %s", out)
	}
	b.waitAnswers(t, "after reboot")
	third := b.pid()
	if third == second || alive(second) {
		t.Fatalf("reboot did not restart node-b's replicad: pid %d before, %d after (old alive: %v)", second, third, alive(second))
	}

	// node-a's history: who, why, which device, the result, the times.
	stdout, stderr, code = a.repctlSplit("fence", "history", "node-b", "--json")
	if code != 0 {
		t.Fatalf("fence history: exit %d %s", code, stderr)
	}
	var h fence.HistoryResponse
	jsonUnmarshal(t, stdout, &h)
	if len(h.Operations) != 3 || h.Operations[0].Action != fence.ActionReboot || h.Operations[1].Action != fence.ActionOn {
		t.Fatalf("history: %+v", h.Operations)
	}
	op := h.Operations[2]
	if op.ID != res.ID || op.Target != "node-b" || op.Action != fence.ActionOff || op.State != fence.StateSuccess ||
		strings.Join(op.Devices, ",") != "bmc-b" || len(op.Requesters) != 1 ||
		op.Requesters[0].Origin != "repctl root@node-a" || op.Requesters[0].Reason != reason ||
		op.Started.IsZero() || op.Completed.Before(op.Started) || len(op.Steps) == 0 {
		t.Fatalf("the fence in node-a's history: %+v", op)
	}
	out = a.mustRepctl("fence", "history")
	t.Logf("node-a's fence history:\n%s", a.mustRepctl("fence", "history", "-v"))
	for _, w := range []string{"node-b  off", "success", "bmc-b", "repctl root@node-a", reason} {
		if !strings.Contains(out, w) {
			t.Fatalf("fence history lacks %q:\n%s", w, out)
		}
	}
}

// Without root: a real repctl against a real replicad whose fence device is
// a script agent. Interrupting `repctl fence node` leaves the operation
// running (and says so); its end lands in the history. A node without a
// fence section says fencing is not configured.
func TestFenceNodeInterruptedAndNotConfigured(t *testing.T) {
	plain := newNode(t)
	plain.start()
	if out, err := plain.repctl("fence", "list"); err == nil || !strings.Contains(out, "fencing is not configured on") || !strings.Contains(out, "hint: add a fence: section") {
		t.Fatalf("fence list without a fence section: %v\n%s", err, out)
	}

	agent, err := fencetest.NewScriptAgent(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t)
	f, err := os.OpenFile(n.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "fence:\n  history-path: %s/fence/history.log\n  devices:\n    - {name: pdu, command: %s, host-map: [\"node-b:2\"], retries: 0, timeout: 60s}\n", n.dir, agent.Path)
	f.Close()
	n.start()
	agent.Set("hang-off", "1")

	cmd := exec.Command(bin("repctl"), "--socket", n.socket, "fence", "node", "node-b", "--reason", "interrupt me")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !agent.Exists("hanging-off") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the agent was not called\n%s\n%s", out.String(), n.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out.String(), "interrupted: the fence operation goes on in replicad; see 'repctl fence history node-b'") {
		t.Fatalf("interrupted repctl: %v\n%s", err, out.String())
	}
	if out := n.mustRepctl("fence", "history"); !strings.Contains(out, "pending") || !strings.Contains(out, "interrupt me") {
		t.Fatalf("history while the agent hangs:\n%s", out)
	}
	// End the hung call (the agent's sleeping child, started by this
	// test's daemon): the operation fails on its own, with no client.
	pid, _ := strconv.Atoi(agent.ReadFile("child-off.pid"))
	if pid <= 1 {
		t.Fatalf("agent child pid %d", pid)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	deadline = time.Now().Add(20 * time.Second)
	for {
		out := n.mustRepctl("fence", "history", "node-b")
		if strings.Contains(out, "failed") {
			st, err := n.status()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "repctl ") || !strings.Contains(out, "@"+st.Node.Name+" ") {
				t.Fatalf("history does not name the requester:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the operation did not end:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
