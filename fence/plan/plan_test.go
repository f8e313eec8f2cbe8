package plan

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func dev(name, port string) Device {
	return Device{Name: name, Port: port, Timeout: 20 * time.Second, Retries: 2, RetryInterval: time.Second,
		VerifyTimeout: 5 * time.Second, VerifyInterval: time.Second}
}

func checkLog(t *testing.T, e *simEnv, want ...string) {
	t.Helper()
	if strings.Join(e.log, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n  %s\nwant:\n  %s", strings.Join(e.log, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestOffVerifiedOnFirstLevel(t *testing.T) {
	e := newSim()
	out := Run(e, Spec{Target: "b", Action: Off, Levels: [][]Device{{dev("ipmi", "b")}, {dev("pdu", "2")}}})
	if !out.OK || out.Level != 1 || out.Err != nil {
		t.Fatalf("outcome %+v", out)
	}
	checkLog(t, e, "L1 off ipmi:b #1", "L1 status ipmi = off")
}

// Off means verified off: success waits for status to report off.
func TestOffWaitsForStatusOff(t *testing.T) {
	e := newSim()
	e.dev("ipmi").offAfter = map[int]int{1: 2}
	out := Run(e, Spec{Target: "b", Action: Off, Levels: [][]Device{{dev("ipmi", "b")}}})
	if !out.OK {
		t.Fatalf("outcome %+v", out)
	}
	checkLog(t, e, "L1 off ipmi:b #1",
		"L1 status ipmi = on", "wait 1s between status checks",
		"L1 status ipmi = on", "wait 1s between status checks",
		"L1 status ipmi = off")
	last := out.Trace[len(out.Trace)-1]
	if last.Action != "verify-off" || last.Detail != "off after 3 status check(s)" {
		t.Fatalf("last trace step %+v", last)
	}
}

// An off that the agent reports done but status never confirms is a failed
// attempt; it is retried, and after the last retry the level fails.
func TestOffNeverVerifiedFailsLevelAfterRetries(t *testing.T) {
	e := newSim()
	e.dev("ipmi").offAfter = map[int]int{1: -1, 2: -1}
	d := dev("ipmi", "b")
	d.Retries = 1
	d.VerifyTimeout = 2 * time.Second
	out := Run(e, Spec{Target: "b", Action: Off, Levels: [][]Device{{d}, {dev("pdu", "2")}}})
	if !out.OK || out.Level != 2 {
		t.Fatalf("outcome %+v, want success on level 2", out)
	}
	checkLog(t, e,
		"L1 off ipmi:b #1", "L1 status ipmi = on", "wait 1s between status checks", "L1 status ipmi = on",
		"wait 1s before retry",
		"L1 off ipmi:b #2", "L1 status ipmi = on", "wait 1s between status checks", "L1 status ipmi = on",
		"L2 off pdu:2 #1", "L2 status pdu = off")
}

func TestAllLevelsFailReportsEachLevel(t *testing.T) {
	e := newSim()
	e.dev("ipmi").failOff = map[int]bool{1: true}
	e.dev("pdu").offAfter = map[int]int{1: -1}
	e.dev("pdu").statusErr = true
	a, b := dev("ipmi", "b"), dev("pdu", "2")
	a.Retries, b.Retries = 0, 0
	b.VerifyTimeout = time.Second
	out := Run(e, Spec{Target: "b", Action: Off, Levels: [][]Device{{a}, {b}}})
	if out.OK || out.Level != 0 {
		t.Fatalf("outcome %+v, want failure", out)
	}
	msg := out.Err.Error()
	for _, want := range []string{"level 1: ipmi: off attempt 1/1: simulated agent failure", "level 2: pdu: off attempt 1/1: power status did not report off within 1s (1 status checks; last: simulated agent failure)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if !errors.Is(out.Err, errSim) || !errors.Is(out.Err, ErrNotOff) {
		t.Errorf("error does not wrap the agent error and ErrNotOff: %v", out.Err)
	}
}

// Every device of a level must succeed; the second failing sends Run to the
// next level even though the first device is already off.
func TestLevelNeedsEveryDevice(t *testing.T) {
	e := newSim()
	e.dev("pdu-2").failOff = map[int]bool{1: true}
	p1, p2 := dev("pdu-1", "1"), dev("pdu-2", "5")
	p2.Retries = 0
	out := Run(e, Spec{Target: "a", Action: Off, Levels: [][]Device{{p1, p2}, {dev("ipmi", "a")}}})
	if !out.OK || out.Level != 2 {
		t.Fatalf("outcome %+v", out)
	}
	checkLog(t, e, "L1 off pdu-1:1 #1", "L1 status pdu-1 = off", "L1 off pdu-2:5 #1", "L2 off ipmi:a #1", "L2 status ipmi = off")
}

// Reboot turns every device of the level off (verified) before any on.
func TestRebootOffAllThenOnAll(t *testing.T) {
	e := newSim()
	out := Run(e, Spec{Target: "a", Action: Reboot, Levels: [][]Device{{dev("pdu-1", "1"), dev("pdu-2", "5")}}})
	if !out.OK || len(out.Warnings) != 0 {
		t.Fatalf("outcome %+v", out)
	}
	checkLog(t, e, "L1 off pdu-1:1 #1", "L1 status pdu-1 = off", "L1 off pdu-2:5 #1", "L1 status pdu-2 = off", "L1 on pdu-1:1 #1", "L1 on pdu-2:5 #1")
}

func TestRebootWhoseOnFailsIsFencedWithWarning(t *testing.T) {
	e := newSim()
	e.dev("ipmi").failOn = map[int]bool{1: true, 2: true}
	d := dev("ipmi", "a")
	d.Retries = 1
	out := Run(e, Spec{Target: "a", Action: Reboot, Levels: [][]Device{{d}}})
	if !out.OK || len(out.Warnings) != 1 || !strings.Contains(out.Warnings[0], "node is fenced (off verified) but power on through ipmi failed") {
		t.Fatalf("outcome %+v", out)
	}
	checkLog(t, e, "L1 off ipmi:a #1", "L1 status ipmi = off", "L1 on ipmi:a #1", "wait 1s before retry", "L1 on ipmi:a #2")
}

func TestOnIsNotVerifiedAndFailsLevel(t *testing.T) {
	e := newSim()
	e.dev("ipmi").failOn = map[int]bool{1: true}
	d := dev("ipmi", "a")
	d.Retries = 0
	out := Run(e, Spec{Target: "a", Action: On, Levels: [][]Device{{d}, {dev("pdu", "1")}}})
	if !out.OK || out.Level != 2 {
		t.Fatalf("outcome %+v", out)
	}
	checkLog(t, e, "L1 on ipmi:a #1", "L2 on pdu:1 #1")
}

// The priority delay comes first; a device delay comes once, before the
// device's first power call, and never before retries or status checks.
func TestDelays(t *testing.T) {
	e := newSim()
	e.dev("ipmi").failOff = map[int]bool{1: true}
	d := dev("ipmi", "a")
	d.Delay = 7 * time.Second
	out := Run(e, Spec{Target: "a", Action: Reboot, PriorityDelay: 15 * time.Second, Levels: [][]Device{{d}}})
	if !out.OK {
		t.Fatalf("outcome %+v", out)
	}
	checkLog(t, e,
		"wait 15s priority delay: the target holds a primary",
		"wait 7s fence delay of device ipmi",
		"L1 off ipmi:a #1", "wait 1s before retry", "L1 off ipmi:a #2", "L1 status ipmi = off",
		"L1 on ipmi:a #1")
}

func TestDeviceInTwoLevelsIsDelayedOnce(t *testing.T) {
	e := newSim()
	e.dev("pdu-2").failOff = map[int]bool{1: true}
	p1, p2 := dev("pdu-1", "1"), dev("pdu-2", "5")
	p1.Delay, p2.Retries = 3*time.Second, 0
	out := Run(e, Spec{Target: "a", Action: Off, Levels: [][]Device{{p1, p2}, {p1}}})
	if !out.OK || out.Level != 2 {
		t.Fatalf("outcome %+v", out)
	}
	checkLog(t, e, "wait 3s fence delay of device pdu-1", "L1 off pdu-1:1 #1", "L1 status pdu-1 = off", "L1 off pdu-2:5 #1", "L2 off pdu-1:1 #1", "L2 status pdu-1 = off")
}

func TestAbortStopsAtOnce(t *testing.T) {
	for at := 1; at <= 4; at++ {
		e := newSim()
		e.dev("ipmi").offAfter = map[int]int{1: 5}
		e.abortAt = at
		out := Run(e, Spec{Target: "a", Action: Off, PriorityDelay: time.Second, Levels: [][]Device{{dev("ipmi", "a")}, {dev("pdu", "1")}}})
		if out.OK || !out.Aborted || !errors.Is(out.Err, ErrAborted) {
			t.Fatalf("abort at call %d: outcome %+v", at, out)
		}
		if e.calls != at {
			t.Fatalf("abort at call %d: Run made %d calls", at, e.calls)
		}
	}
}

func TestRandomDelay(t *testing.T) {
	if got := RandomDelay(2*time.Second, 0, 12345); got != 2*time.Second {
		t.Fatalf("no max: %v", got)
	}
	max := 3 * time.Second
	for _, u := range []uint64{0, 1, uint64(max), uint64(max) + 1, ^uint64(0)} {
		got := RandomDelay(time.Second, max, u)
		if got < time.Second || got > time.Second+max {
			t.Fatalf("RandomDelay(1s, 3s, %d) = %v, outside [1s, 4s]", u, got)
		}
	}
	if RandomDelay(0, max, uint64(max)) != max {
		t.Fatal("the maximum itself is not reachable")
	}
}

func TestValidateNamesProblems(t *testing.T) {
	bad := dev("ipmi", "a")
	bad.Timeout = 0
	err := Spec{Target: "a", Action: "kill", Levels: [][]Device{{bad}, {}}}.Validate()
	for _, want := range []string{`action "kill"`, "device ipmi: timeout 0s", "level 2 is empty"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to mention %q", err, want)
		}
	}
	if err := (Spec{Target: "z", Action: Off}).Validate(); err == nil || !strings.Contains(err.Error(), `no device can fence "z"`) {
		t.Errorf("Validate without levels = %v", err)
	}
}
