package plan

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/testenv"
)

// maxChecks is how many status checks verification makes before giving up,
// given that each check costs cost and checks are interval apart: after
// check k (ending at k*cost + (k-1)*interval) it continues while that is
// still under the timeout.
func maxChecks(d Device, cost time.Duration) int {
	k := 1
	for time.Duration(k)*cost+time.Duration(k-1)*d.VerifyInterval < d.VerifyTimeout {
		k++
	}
	return k
}

// refDeviceOK is the reference: can device d complete action a within its
// attempts? (Off: the call succeeds and status reports off in time.)
func refDeviceOK(sd *simDevice, d Device, a Action, cost time.Duration) bool {
	for attempt := 1; attempt <= 1+d.Retries; attempt++ {
		if a == On {
			if !sd.failOn[attempt] {
				return true
			}
			continue
		}
		if sd.failOff[attempt] {
			continue
		}
		n, ok := sd.offAfter[attempt]
		if !ok {
			n = 0
		}
		if n >= 0 && n+1 <= maxChecks(d, cost) {
			return true
		}
	}
	return false
}

// refLevel is the level the reference expects to succeed (0: none).
func refLevel(e *simEnv, s Spec) int {
	for i, level := range s.Levels {
		ok := true
		for _, d := range level {
			a := Off
			if s.Action == On {
				a = On
			}
			if !refDeviceOK(e.dev(d.Name), d, a, e.callCost) {
				ok = false
				break
			}
		}
		if ok {
			return i + 1
		}
	}
	return 0
}

func randomScenario(r *rand.Rand) (*simEnv, Spec) {
	e := newSim()
	names := []string{"d0", "d1", "d2", "d3"}
	actions := []Action{Off, On, Reboot}
	s := Spec{Target: "t", Action: actions[r.IntN(3)]}
	if r.IntN(3) == 0 {
		s.PriorityDelay = time.Duration(1+r.IntN(20)) * time.Second
	}
	per := map[string]Device{}
	for _, n := range names {
		per[n] = Device{Name: n, Port: "p-" + n, Timeout: time.Second, Retries: r.IntN(3),
			RetryInterval: time.Duration(r.IntN(3)) * time.Second,
			Delay:         time.Duration(r.IntN(2)*r.IntN(10)) * time.Second,
			VerifyTimeout: time.Duration(1+r.IntN(6)) * time.Second, VerifyInterval: time.Duration(1+r.IntN(2)) * time.Second}
		sd := e.dev(n)
		sd.failOff, sd.failOn, sd.offAfter = map[int]bool{}, map[int]bool{}, map[int]int{}
		for a := 1; a <= 3; a++ {
			sd.failOff[a] = r.IntN(3) == 0
			sd.failOn[a] = r.IntN(3) == 0
			sd.offAfter[a] = r.IntN(6) - 1
		}
		sd.statusErr = r.IntN(4) == 0
	}
	for l := 0; l < 1+r.IntN(3); l++ {
		perm := r.Perm(len(names))[:1+r.IntN(2)]
		var level []Device
		for _, i := range perm {
			level = append(level, per[names[i]])
		}
		s.Levels = append(s.Levels, level)
	}
	return e, s
}

// TestRunMatchesReferenceModel runs random scenarios and checks the outcome
// against the reference, and the call log against the rules in doc.go.
func TestRunMatchesReferenceModel(t *testing.T) {
	r := testenv.Rand(t)
	for round := 0; round < 5000; round++ {
		e, s := randomScenario(r)
		// The reference reads the simulated behaviour before Run changes
		// device state.
		want := refLevel(e, s)
		out := Run(e, s)
		ctx := func() string {
			return fmt.Sprintf("round %d: spec %+v\ncalls:\n  %s", round, s, strings.Join(e.log, "\n  "))
		}
		if out.Level != want || out.OK != (want > 0) {
			t.Fatalf("%s\noutcome level %d ok %v, reference level %d", ctx(), out.Level, out.OK, want)
		}
		if !out.OK && out.Err == nil {
			t.Fatalf("%s\nfailure without an error", ctx())
		}
		checkRules(t, e.log, s, out, ctx)
	}
}

func checkRules(t *testing.T, log []string, s Spec, out Outcome, ctx func() string) {
	t.Helper()
	if s.PriorityDelay > 0 && !strings.HasPrefix(log[0], fmt.Sprintf("wait %v priority delay", s.PriorityDelay)) {
		t.Fatalf("%s\npriority delay is not the first step", ctx())
	}
	delayed := map[string]bool{}
	powered := map[string]bool{}
	attempts := map[string]int{}
	lastLevel := 0
	retries := map[string]int{}
	for _, l := range s.Levels {
		for _, d := range l {
			retries[d.Name] = d.Retries
		}
	}
	for _, line := range log {
		var lv, n int
		var act, dev string
		if strings.HasPrefix(line, "wait ") && strings.Contains(line, "fence delay of device ") {
			dev = line[strings.LastIndex(line, " ")+1:]
			if delayed[dev] || powered[dev] {
				t.Fatalf("%s\ndevice %s delayed twice or after its first power call", ctx(), dev)
			}
			delayed[dev] = true
			continue
		}
		if _, err := fmt.Sscanf(line, "L%d %s %s #%d", &lv, &act, &dev, &n); err == nil && (act == "off" || act == "on") {
			name := dev[:strings.Index(dev, ":")]
			powered[name] = true
			if lv < lastLevel {
				t.Fatalf("%s\nwent back from level %d to %d", ctx(), lastLevel, lv)
			}
			lastLevel = lv
			key := fmt.Sprintf("%d/%s/%s", lv, name, act)
			attempts[key]++
			if attempts[key] > 1+retries[name] {
				t.Fatalf("%s\n%s: %d attempts, retries %d", ctx(), key, attempts[key], retries[name])
			}
		}
	}
	if !out.OK || s.Action == On {
		return
	}
	// Verified off: in the level that succeeded, each device's off call is
	// followed by a status answering off before any on call.
	level := s.Levels[out.Level-1]
	for _, d := range level {
		lastOff, verified, onBefore := -1, -1, -1
		for i, line := range log {
			if strings.HasPrefix(line, fmt.Sprintf("L%d off %s:", out.Level, d.Name)) {
				lastOff = i
			}
			if line == fmt.Sprintf("L%d status %s = off", out.Level, d.Name) {
				verified = i
			}
			if strings.HasPrefix(line, fmt.Sprintf("L%d on ", out.Level)) && onBefore < 0 {
				onBefore = i
			}
		}
		if lastOff < 0 || verified < lastOff {
			t.Fatalf("%s\n%s: success without a verified off", ctx(), d.Name)
		}
		if onBefore >= 0 && onBefore < verified {
			t.Fatalf("%s\nreboot powered on before %s was verified off", ctx(), d.Name)
		}
	}
}
