package fence

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/fence/plan"
	"github.com/replicad/replicad/internal/clock"
)

func TestOffIsVerifiedBeforeSuccess(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi-b", []string{"node-b"}, nil)
	a.Set("lag-off", "3") // status says on three more times after off
	f := r.start(Options{})
	res, err := f.Fence(context.Background(), req("node-b", ActionOff))
	if err != nil {
		t.Fatal(err)
	}
	if res.State != StateSuccess || res.Level != 1 || a.Power("node-b") != "off" {
		t.Fatalf("result %+v, power %s", res.Operation, a.Power("node-b"))
	}
	want := []string{"metadata ", "off node-b", "status node-b", "status node-b", "status node-b", "status node-b"}
	if got := a.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("agent calls %q, want %q", got, want)
	}
	last := res.Steps[len(res.Steps)-1]
	if last.Action != "verify-off" || last.Detail != "off after 4 status check(s)" {
		t.Fatalf("last step %+v", last)
	}
	// The agent got the fence-agents protocol: params, then action and port.
	in := a.LastStdin()
	if !strings.HasSuffix(strings.TrimSpace(in), "action=status\nport=node-b") {
		t.Fatalf("stdin %q", in)
	}
}

// A device that says "off done" but stays on must not count as fenced: the
// level fails on verification and the next level runs.
func TestLyingDeviceFailsVerificationAndNextLevelRuns(t *testing.T) {
	r := newRig(t)
	liar := r.device("liar", []string{"node-b"}, nil, func(d *DeviceConfig) { d.Retries, d.VerifyInterval = 1, 100*time.Millisecond })
	liar.Set("ignore-off", "1")
	pdu := r.device("pdu", nil, []string{"node-b:7"})
	f := r.start(Options{})
	res, err := f.Fence(context.Background(), req("node-b", ActionOff))
	if err != nil {
		t.Fatal(err)
	}
	if res.Level != 2 || pdu.Power("7") != "off" {
		t.Fatalf("result %+v", res.Operation)
	}
	if got := liar.PowerCalls(); len(got) != 2 {
		t.Fatalf("liar got %q, want two off attempts", got)
	}
	if res.Devices[0] != "liar" || res.Devices[1] != "pdu" {
		t.Fatalf("devices %v", res.Devices)
	}
}

func TestAllLevelsFailingIsAClearError(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi", []string{"node-b"}, nil, func(d *DeviceConfig) { d.Retries = 1 })
	a.Set("fail-off", "always")
	a.Set("fail-code", "3")
	f := r.start(Options{})
	res, err := f.Fence(context.Background(), req("node-b", ActionOff))
	if !errors.Is(err, ErrFenceFailed) || !errors.Is(err, ErrLoginDenied) {
		t.Fatalf("err = %v, want ErrFenceFailed and ErrLoginDenied", err)
	}
	for _, want := range []string{"fence off node-b", "level 1: ipmi: off attempt 2/2", "fence_replicad_test off (port \"node-b\"): exit 3 (login denied): Failed: simulated off failure"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if res.State != StateFailed || res.Error == "" {
		t.Fatalf("result %+v", res.Operation)
	}
}

func TestRetriesThenSuccess(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi", []string{"node-b"}, nil) // default retries: 2
	a.Set("fail-off", "2")
	f := r.start(Options{})
	res, err := f.Fence(context.Background(), req("node-b", ActionOff))
	if err != nil {
		t.Fatal(err)
	}
	if got := a.PowerCalls(); len(got) != 3 || res.Level != 1 {
		t.Fatalf("calls %q, level %d; want 3 offs on level 1", got, res.Level)
	}
}

// Every device of a level must succeed: PDU 2 failing sends the operation
// to level 2 although PDU 1 already cut its outlet.
func TestLevelsInOrderEveryDeviceMustSucceed(t *testing.T) {
	r := newRig(t)
	p1 := r.device("pdu-1", nil, []string{"node-a:1"})
	p2 := r.device("pdu-2", nil, []string{"node-a:5"}, func(d *DeviceConfig) { d.Retries = 0 })
	p2.Set("fail-off", "always")
	ipmi := r.device("ipmi-a", []string{"node-a"}, nil)
	r.cfg.Topology = []TargetLevels{{Target: "node-a", Levels: [][]string{{"pdu-1", "pdu-2"}, {"ipmi-a"}}}}
	f := r.start(Options{})
	res, err := f.Fence(context.Background(), req("node-a", ActionOff))
	if err != nil {
		t.Fatal(err)
	}
	if res.Level != 2 || p1.Power("1") != "off" || ipmi.Power("node-a") != "off" {
		t.Fatalf("result %+v", res.Operation)
	}
	if len(p1.PowerCalls()) != 1 || len(p2.PowerCalls()) != 1 || len(ipmi.PowerCalls()) != 1 {
		t.Fatalf("calls pdu-1 %q pdu-2 %q ipmi %q", p1.PowerCalls(), p2.PowerCalls(), ipmi.PowerCalls())
	}
}

// Reboot with two PDUs: both outlets off and verified before either is
// switched back on.
func TestRebootTurnsEveryDeviceOffBeforeAnyOn(t *testing.T) {
	r := newRig(t)
	p1 := r.device("pdu-1", nil, []string{"node-a:1"})
	p2 := r.device("pdu-2", nil, []string{"node-a:5"})
	r.cfg.Topology = []TargetLevels{{Target: "node-a", Levels: [][]string{{"pdu-1", "pdu-2"}}}}
	f := r.start(Options{})
	res, err := f.Fence(context.Background(), req("node-a", ActionReboot))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, s := range res.Steps {
		order = append(order, s.Action+" "+s.Device)
	}
	want := "off pdu-1|verify-off pdu-1|off pdu-2|verify-off pdu-2|on pdu-1|on pdu-2"
	if strings.Join(order, "|") != want {
		t.Fatalf("steps %q, want %q", order, want)
	}
	if p1.Power("1") != "on" || p2.Power("5") != "on" {
		t.Fatal("outlets not back on after reboot")
	}
}

func TestRebootWhoseOnFailsIsStillAFenceWithAWarning(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi", []string{"node-b"}, nil, func(d *DeviceConfig) { d.Retries = 0 })
	a.Set("fail-on", "always")
	f := r.start(Options{})
	res, err := f.Fence(context.Background(), req("node-b", ActionReboot))
	if err != nil {
		t.Fatal(err)
	}
	if res.State != StateSuccess || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "power on through ipmi failed") {
		t.Fatalf("result %+v", res.Operation)
	}
	if _, ok := f.LastFenced("node-b"); !ok {
		t.Fatal("LastFenced does not know the reboot")
	}
}

func TestOnPowersOnWithoutVerification(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi", []string{"node-b"}, nil)
	a.Set("power.node-b", "off")
	f := r.start(Options{})
	if _, err := f.Fence(context.Background(), req("node-b", ActionOn)); err != nil {
		t.Fatal(err)
	}
	if got := a.Calls(); strings.Join(got, "|") != "metadata |on node-b" {
		t.Fatalf("calls %q", got)
	}
	if _, ok := f.LastFenced("node-b"); ok {
		t.Fatal("an on operation counted as a fence")
	}
}

// The device delay (base + random part from the injected source) is waited
// on the injected clock before the first power call, and only then does
// the agent run.
func TestDeviceDelayUsesInjectedClockAndRandom(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi", []string{"node-b"}, nil, func(d *DeviceConfig) { d.DelayBase, d.DelayMax = 5*time.Second, 10*time.Second })
	fc := clock.NewFake(time.Unix(1000, 0))
	f := r.start(Options{Clock: fc, Rand: rand.New(rand.NewPCG(7, 7))})
	want := plan.RandomDelay(5*time.Second, 10*time.Second, rand.New(rand.NewPCG(7, 7)).Uint64())
	ch := fenceAsync(t, f, req("node-b", ActionOff))
	waitPending(t, fc, 1)
	fc.Advance(want - time.Nanosecond)
	if got := a.PowerCalls(); len(got) != 0 {
		t.Fatalf("agent ran %q before the delay of %v passed", got, want)
	}
	fc.Advance(time.Nanosecond)
	res := recv(t, ch)
	if res.err != nil {
		t.Fatal(res.err)
	}
	first := res.res.Steps[0]
	if first.Action != "wait" || !strings.HasPrefix(first.Detail, want.String()+" fence delay of device ipmi") {
		t.Fatalf("first step %+v, want the %v delay", first, want)
	}
}

// The priority delay applies only when the target holds a primary, so the
// primary's holder wins a two-node fence race.
func TestPriorityDelayOnlyForPrimaryHolder(t *testing.T) {
	r := newRig(t)
	r.device("ipmi-a", []string{"node-a"}, nil)
	b := r.device("ipmi-b", []string{"node-b"}, nil)
	r.cfg.PriorityDelay = 15 * time.Second
	fc := clock.NewFake(time.Unix(1000, 0))
	f := r.start(Options{Clock: fc})
	// node-a is not primary: no delay.
	if _, err := f.Fence(context.Background(), req("node-a", ActionOff)); err != nil {
		t.Fatal(err)
	}
	rq := req("node-b", ActionOff)
	rq.TargetHoldsPrimary = true
	ch := fenceAsync(t, f, rq)
	waitPending(t, fc, 1)
	fc.Advance(15*time.Second - time.Nanosecond)
	if len(b.PowerCalls()) != 0 {
		t.Fatal("primary holder fenced before the priority delay passed")
	}
	fc.Advance(time.Nanosecond)
	if res := recv(t, ch); res.err != nil {
		t.Fatal(res.err)
	}
}

// A hung agent is killed, with its children, when the device timeout
// passes on the injected clock; the attempt fails with ErrTimeout.
func TestAgentTimeoutKillsProcessGroup(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi", []string{"node-b"}, nil, func(d *DeviceConfig) { d.Retries, d.Timeout = 0, 20*time.Second })
	a.Set("hang-off", "1")
	fc := clock.NewFake(time.Unix(1000, 0))
	f := r.start(Options{Clock: fc})
	ch := fenceAsync(t, f, req("node-b", ActionOff))
	waitFor(t, "the agent to hang", func() bool { return a.Exists("hanging-off") && a.ReadFile("child-off.pid") != "" })
	child, _ := strconv.Atoi(a.ReadFile("child-off.pid"))
	fc.Advance(20 * time.Second)
	res := recv(t, ch)
	if !errors.Is(res.err, ErrTimeout) || !errors.Is(res.err, ErrFenceFailed) {
		t.Fatalf("err = %v, want ErrTimeout and ErrFenceFailed", res.err)
	}
	if !strings.Contains(res.err.Error(), "no answer within 20s") {
		t.Fatalf("err = %v", res.err)
	}
	waitFor(t, "the agent's child to die", func() bool { return gone(child) })
}

// gone reports whether pid has exited (a zombie waiting for init counts).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}

// Concurrent requests for one target: the same action merges into the
// running operation; a different action waits for it; another target runs
// in parallel.
func TestConcurrentRequestsMergeAndSerialise(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi-a", []string{"node-a"}, nil, func(d *DeviceConfig) { d.DelayBase = 10 * time.Second })
	b := r.device("ipmi-b", []string{"node-b"}, nil)
	fc := clock.NewFake(time.Unix(1000, 0))
	f := r.start(Options{Clock: fc})

	first := fenceAsync(t, f, req("node-a", ActionOff))
	waitPending(t, fc, 1) // the first operation waits out its delay
	r2 := req("node-a", ActionOff)
	r2.Origin, r2.Reason = "node-c/crm", "node-a lost"
	second := fenceAsync(t, f, r2)
	waitFor(t, "the merge", func() bool {
		ops := f.History(HistoryQuery{Target: "node-a"})
		return len(ops) == 1 && len(ops[0].Requesters) == 2
	})
	third := fenceAsync(t, f, req("node-a", ActionOn))
	waitFor(t, "the queued on", func() bool { return len(f.History(HistoryQuery{Target: "node-a"})) == 2 })

	// Another target is not held up by node-a's operation.
	if _, err := f.Fence(context.Background(), req("node-b", ActionOff)); err != nil {
		t.Fatal(err)
	}
	if b.Power("node-b") != "off" || len(a.PowerCalls()) != 0 {
		t.Fatal("node-b's fence waited for node-a's")
	}

	fc.Advance(10 * time.Second)
	r1, rr2 := recv(t, first), recv(t, second)
	if r1.err != nil || rr2.err != nil {
		t.Fatal(r1.err, rr2.err)
	}
	if r1.res.ID != rr2.res.ID || r1.res.Merged || !rr2.res.Merged || len(rr2.res.Requesters) != 2 {
		t.Fatalf("first %+v\nsecond %+v", r1.res, rr2.res)
	}
	// The queued on starts only now, after its own delay.
	waitPending(t, fc, 1)
	fc.Advance(10 * time.Second)
	r3 := recv(t, third)
	if r3.err != nil || r3.res.ID == r1.res.ID {
		t.Fatalf("third %+v %v", r3.res, r3.err)
	}
	if got := strings.Join(a.PowerCalls(), "|"); got != "off node-a|on node-a" {
		t.Fatalf("node-a power calls %q, want one off then one on", got)
	}
}

// Confirm ends a stuck operation as confirmed; its requesters get success,
// queued off/reboot operations are settled, a queued on still runs.
func TestConfirmSettlesRunningAndQueuedOperations(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi-a", []string{"node-a"}, nil, func(d *DeviceConfig) { d.Retries = 0 })
	a.Set("hang-off", "1")
	f := r.start(Options{})
	running := fenceAsync(t, f, req("node-a", ActionOff))
	waitFor(t, "the agent to hang", func() bool { return a.Exists("hanging-off") && a.ReadFile("child-off.pid") != "" })
	child, _ := strconv.Atoi(a.ReadFile("child-off.pid"))
	queuedOn := fenceAsync(t, f, req("node-a", ActionOn))
	waitFor(t, "the queued on", func() bool { return len(f.History(HistoryQuery{Target: "node-a"})) == 2 })
	queuedReboot := fenceAsync(t, f, req("node-a", ActionReboot))
	waitFor(t, "the queued reboot", func() bool { return len(f.History(HistoryQuery{Target: "node-a"})) == 3 })

	a.Set("hang-off", "")
	res, err := f.Confirm(context.Background(), "node-a", "repctl root@node-b", "pulled the power cord myself")
	if err != nil || res.State != StateConfirmed {
		t.Fatalf("Confirm = %+v, %v", res, err)
	}
	for _, ch := range []<-chan fenceReturn{running, queuedReboot} {
		got := recv(t, ch)
		if got.err != nil || got.res.State != StateConfirmed || !strings.Contains(got.res.Error, "pulled the power cord myself") {
			t.Fatalf("settled op: %+v %v", got.res, got.err)
		}
	}
	if on := recv(t, queuedOn); on.err != nil || on.res.State != StateSuccess {
		t.Fatalf("queued on: %+v %v", on.res, on.err)
	}
	waitFor(t, "the hung agent's child to die", func() bool { return gone(child) })
	last, ok := f.LastFenced("node-a")
	if !ok || last.State != StateConfirmed {
		t.Fatalf("LastFenced = %+v %v", last, ok)
	}
	// A node with no device at all can be confirmed too.
	if _, err := f.Confirm(context.Background(), "node-z", "repctl root@node-b", "node-z is unplugged"); err != nil {
		t.Fatal(err)
	}
}

func TestCloseFailsRunningAndQueuedOperations(t *testing.T) {
	r := newRig(t)
	r.device("ipmi-a", []string{"node-a"}, nil, func(d *DeviceConfig) { d.DelayBase = time.Hour / 12 })
	fc := clock.NewFake(time.Unix(1000, 0))
	f := r.start(Options{Clock: fc})
	running := fenceAsync(t, f, req("node-a", ActionOff))
	waitPending(t, fc, 1)
	queued := fenceAsync(t, f, req("node-a", ActionOn))
	waitFor(t, "the queued on", func() bool { return len(f.History(HistoryQuery{})) == 2 })
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan fenceReturn{running, queued} {
		got := recv(t, ch)
		if !errors.Is(got.err, ErrFenceFailed) || got.res.State != StateFailed {
			t.Fatalf("after Close: %+v %v", got.res, got.err)
		}
	}
	if _, err := f.Fence(context.Background(), req("node-a", ActionOff)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Fence after Close = %v", err)
	}
}

func TestFenceReturnsWhenCallerGivesUpAndOperationGoesOn(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi-a", []string{"node-a"}, nil, func(d *DeviceConfig) { d.DelayBase = time.Minute })
	fc := clock.NewFake(time.Unix(1000, 0))
	f := r.start(Options{Clock: fc})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := f.Fence(ctx, req("node-a", ActionOff))
		done <- err
	}()
	waitPending(t, fc, 1)
	cancel()
	if err := <-done; !errors.Is(err, ErrStillRunning) {
		t.Fatalf("err = %v, want ErrStillRunning", err)
	}
	fc.Advance(time.Minute)
	waitFor(t, "the operation to finish", func() bool {
		ops := f.History(HistoryQuery{})
		return len(ops) == 1 && ops[0].State == StateSuccess
	})
	if a.Power("node-a") != "off" {
		t.Fatal("operation did not go on")
	}
}

func TestBadRequestsAndUnknownTargets(t *testing.T) {
	r := newRig(t)
	r.device("ipmi-a", []string{"node-a"}, nil)
	f := r.start(Options{})
	ctx := context.Background()
	cases := []struct {
		r    Request
		want error
		msg  string
	}{
		{Request{Target: "node-a", Action: "kill", Origin: "o", Reason: "r"}, ErrBadRequest, `action "kill"`},
		{Request{Target: "node-a", Action: ActionOff, Origin: "o"}, ErrBadRequest, "reason is empty"},
		{Request{Target: "node-a", Action: ActionOff, Reason: "r"}, ErrBadRequest, "origin is empty"},
		{Request{Target: "bad name", Action: ActionOff, Origin: "o", Reason: "r"}, ErrBadRequest, "target"},
		{Request{Target: "node-q", Action: ActionOff, Origin: "o", Reason: "r"}, ErrUnknownTarget, `"node-q" (configured targets: [node-a])`},
	}
	for _, c := range cases {
		_, err := f.Fence(ctx, c.r)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Fence(%+v) = %v, want %v mentioning %q", c.r, err, c.want, c.msg)
		}
	}
	if _, err := f.Confirm(ctx, "node-a", "o", ""); !errors.Is(err, ErrBadRequest) {
		t.Errorf("Confirm without reason = %v", err)
	}
	if _, err := f.Test(ctx, "nope"); !errors.Is(err, ErrUnknownDevice) {
		t.Errorf("Test(nope) = %v", err)
	}
}

func TestDeviceTestListAndInfo(t *testing.T) {
	r := newRig(t)
	a := r.device("pdu", nil, []string{"node-a:1", "node-b:2"}, func(d *DeviceConfig) {
		d.Params = map[string]string{"ip": "10.0.0.30", "password": "hunter2"}
	})
	a.Set("ports", "1,node-a\n2,node-b")
	a.Set("power.2", "off")
	f := r.start(Options{})
	res, err := f.Test(context.Background(), "pdu")
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Monitor != "ok" || len(res.Targets) != 2 || res.Targets[0].State != "on" || res.Targets[1].State != "off" {
		t.Fatalf("Test = %+v", res)
	}
	a.Set("fail-monitor", "1")
	res, _ = f.Test(context.Background(), "pdu")
	if res.OK || !strings.Contains(res.Monitor, "simulated monitor failure") {
		t.Fatalf("Test with failing monitor = %+v", res)
	}
	plugs, err := f.List(context.Background(), "pdu")
	if err != nil || len(plugs) != 2 || plugs[1].Port != "2" || plugs[1].Alias != "node-b" {
		t.Fatalf("List = %v, %v", plugs, err)
	}
	info := f.Devices()
	if len(info) != 1 || info[0].Params["password"] != "(redacted)" || info[0].Params["ip"] != "10.0.0.30" || info[0].AgentName != "fence_replicad_test" {
		t.Fatalf("Devices = %+v", info)
	}
	if len(info[0].Targets) != 2 || info[0].Targets[1] != (TargetPort{"node-b", "2"}) {
		t.Fatalf("targets %+v", info[0].Targets)
	}
}
