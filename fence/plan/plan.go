package plan

import (
	"errors"
	"fmt"
	"time"
)

// Action is what an operation does to its target.
type Action string

// Actions of an operation. Off and On are also the power calls.
const (
	Off    Action = "off"
	On     Action = "on"
	Reboot Action = "reboot"
)

// Valid reports whether a is off, on or reboot.
func (a Action) Valid() bool { return a == Off || a == On || a == Reboot }

// State is a power state reported by a status call.
type State int

const (
	StateUnknown State = iota
	StateOn
	StateOff
)

func (s State) String() string {
	switch s {
	case StateOn:
		return "on"
	case StateOff:
		return "off"
	}
	return "unknown"
}

// Device is one device of a level, with the port that fences the target and
// the policy for this operation.
type Device struct {
	Name string
	Port string
	// Delay is waited before the device's first power call.
	Delay time.Duration
	// Timeout bounds each agent call; Env enforces it.
	Timeout        time.Duration
	Retries        int
	RetryInterval  time.Duration
	VerifyTimeout  time.Duration
	VerifyInterval time.Duration
}

// Spec is one operation.
type Spec struct {
	Target        string
	Action        Action
	Levels        [][]Device
	PriorityDelay time.Duration
}

// Validate reports every reason Run could not follow s.
func (s Spec) Validate() error {
	var errs []error
	bad := func(f string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+f, append([]any{ErrBadSpec}, a...)...))
	}
	if !s.Action.Valid() {
		bad("action %q, want off, on or reboot", s.Action)
	}
	if len(s.Levels) == 0 {
		bad("no levels: no device can fence %q", s.Target)
	}
	if s.PriorityDelay < 0 {
		bad("negative priority delay %v", s.PriorityDelay)
	}
	for i, l := range s.Levels {
		if len(l) == 0 {
			bad("level %d is empty", i+1)
		}
		for _, d := range l {
			switch {
			case d.Timeout <= 0:
				bad("level %d device %s: timeout %v, want > 0", i+1, d.Name, d.Timeout)
			case d.Retries < 0:
				bad("level %d device %s: retries %d, want >= 0", i+1, d.Name, d.Retries)
			case d.Delay < 0 || d.RetryInterval < 0:
				bad("level %d device %s: negative delay or retry interval", i+1, d.Name)
			case s.Action != On && (d.VerifyTimeout <= 0 || d.VerifyInterval <= 0):
				bad("level %d device %s: verify timeout %v and interval %v, want both > 0", i+1, d.Name, d.VerifyTimeout, d.VerifyInterval)
			}
		}
	}
	return errors.Join(errs...)
}

// Call is one agent call Run asks Env to make.
type Call struct {
	Level   int // 1-based
	Device  string
	Port    string
	Action  Action // Off or On for Power; empty for Status
	Attempt int    // 1-based attempt of the power action this call belongs to
	Timeout time.Duration
}

// Env is the world Run acts on.
type Env interface {
	Now() time.Time
	// Wait blocks for d. An error (wrapping ErrAborted) stops the run.
	Wait(d time.Duration, why string) error
	Power(c Call) error
	Status(c Call) (State, error)
}

// Step is one line of an operation's trace: a power call, a verification,
// or a wait.
type Step struct {
	Level   int       `json:"level,omitempty"`
	Device  string    `json:"device,omitempty"`
	Port    string    `json:"port,omitempty"`
	Action  string    `json:"action"` // off, on, verify-off, wait
	Attempt int       `json:"attempt,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Error   string    `json:"error,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

// Outcome is how an operation ended.
type Outcome struct {
	OK bool
	// Level is the 1-based level that succeeded, 0 if none.
	Level int
	// Err explains a failure: one error per level, each wrapping the agent
	// errors (so errors.Is finds their sentinels).
	Err      error
	Aborted  bool
	Warnings []string
	Trace    []Step
}

// RandomDelay is base plus a uniformly random part in [0, max], drawn from
// u (a random 64-bit value the caller supplies, so tests choose it).
func RandomDelay(base, max time.Duration, u uint64) time.Duration {
	if max <= 0 {
		return base
	}
	return base + time.Duration(u%(uint64(max)+1))
}

type run struct {
	env     Env
	spec    Spec
	out     Outcome
	delayed map[string]bool
	// abort is the first error wrapping ErrAborted; once set, every step
	// returns without touching env.
	abort error
}

// Run carries out spec against env. It panics only if spec is invalid
// (validate it first).
func Run(env Env, spec Spec) Outcome {
	if err := spec.Validate(); err != nil {
		panic(fmt.Sprintf("plan: Run with invalid spec: %v", err))
	}
	r := &run{env: env, spec: spec, delayed: map[string]bool{}}
	if spec.PriorityDelay > 0 {
		r.wait(0, "", spec.PriorityDelay, "priority delay: the target holds a primary")
	}
	var levelErrs []error
	for i, level := range spec.Levels {
		if r.abort != nil {
			break
		}
		if err := r.level(i+1, level); err != nil {
			levelErrs = append(levelErrs, fmt.Errorf("level %d: %w", i+1, err))
			continue
		}
		if r.abort != nil {
			break
		}
		r.out.OK, r.out.Level = true, i+1
		return r.out
	}
	if r.abort != nil {
		r.out.Aborted, r.out.Err = true, r.abort
		return r.out
	}
	r.out.Err = errors.Join(levelErrs...)
	return r.out
}

// aborted records err if it stops the run, and reports whether the run is
// stopping.
func (r *run) aborted(err error) bool {
	if r.abort == nil && err != nil && errors.Is(err, ErrAborted) {
		r.abort = err
	}
	return r.abort != nil
}

func (r *run) wait(level int, device string, d time.Duration, why string) {
	if r.abort != nil {
		return
	}
	start := r.env.Now()
	err := r.env.Wait(d, why)
	step := Step{Level: level, Device: device, Action: "wait", Start: start, End: r.env.Now(), Detail: fmt.Sprintf("%v %s", d, why)}
	if err != nil {
		step.Error = err.Error()
	}
	r.out.Trace = append(r.out.Trace, step)
	r.aborted(err)
}

func (r *run) level(n int, devs []Device) error {
	switch r.spec.Action {
	case On:
		for _, d := range devs {
			if err := r.attempts(n, d, On); err != nil {
				return fmt.Errorf("%s: %w", d.Name, err)
			}
		}
		return nil
	default: // Off and Reboot begin with a verified off on every device.
		for _, d := range devs {
			if err := r.attempts(n, d, Off); err != nil {
				return fmt.Errorf("%s: %w", d.Name, err)
			}
		}
		if r.spec.Action == Reboot {
			for _, d := range devs {
				if err := r.attempts(n, d, On); err != nil && r.abort == nil {
					r.out.Warnings = append(r.out.Warnings, fmt.Sprintf("reboot of %s: node is fenced (off verified) but power on through %s failed: %v", r.spec.Target, d.Name, err))
				}
			}
		}
		return nil
	}
}

// attempts runs one power action on d with its retries.
func (r *run) attempts(level int, d Device, a Action) error {
	if !r.delayed[d.Name] {
		r.delayed[d.Name] = true
		if d.Delay > 0 {
			r.wait(level, d.Name, d.Delay, "fence delay of device "+d.Name)
		}
	}
	total := 1 + d.Retries
	var err error
	for attempt := 1; attempt <= total; attempt++ {
		if attempt > 1 && d.RetryInterval > 0 {
			r.wait(level, d.Name, d.RetryInterval, "before retry")
		}
		if r.abort != nil {
			return r.abort
		}
		if err = r.attempt(level, d, a, attempt); err == nil {
			return nil
		}
		if r.abort != nil {
			return r.abort
		}
		err = fmt.Errorf("%s attempt %d/%d: %w", a, attempt, total, err)
	}
	return err
}

func (r *run) attempt(level int, d Device, a Action, attempt int) error {
	c := Call{Level: level, Device: d.Name, Port: d.Port, Action: a, Attempt: attempt, Timeout: d.Timeout}
	start := r.env.Now()
	err := r.env.Power(c)
	step := Step{Level: level, Device: d.Name, Port: d.Port, Action: string(a), Attempt: attempt, Start: start, End: r.env.Now()}
	if err != nil {
		step.Error = err.Error()
	}
	r.out.Trace = append(r.out.Trace, step)
	if r.aborted(err) || err != nil || a == On {
		return err
	}
	return r.verifyOff(c, d)
}

// verifyOff polls status until it reports off or VerifyTimeout has passed.
func (r *run) verifyOff(c Call, d Device) error {
	c.Action = ""
	start := r.env.Now()
	polls := 0
	var last State
	var lastErr error
	for {
		polls++
		last, lastErr = r.env.Status(c)
		if r.aborted(lastErr) {
			return r.abort
		}
		if lastErr == nil && last == StateOff {
			r.out.Trace = append(r.out.Trace, Step{Level: c.Level, Device: c.Device, Port: c.Port, Action: "verify-off", Attempt: c.Attempt, Start: start, End: r.env.Now(), Detail: fmt.Sprintf("off after %d status check(s)", polls)})
			return nil
		}
		if r.env.Now().Sub(start) >= d.VerifyTimeout {
			break
		}
		r.wait(c.Level, c.Device, d.VerifyInterval, "between status checks")
		if r.abort != nil {
			return r.abort
		}
	}
	var err error
	if lastErr != nil {
		err = fmt.Errorf("%w within %v (%d status checks; last: %w)", ErrNotOff, d.VerifyTimeout, polls, lastErr)
	} else {
		err = fmt.Errorf("%w within %v (%d status checks; last: %s)", ErrNotOff, d.VerifyTimeout, polls, last)
	}
	r.out.Trace = append(r.out.Trace, Step{Level: c.Level, Device: c.Device, Port: c.Port, Action: "verify-off", Attempt: c.Attempt, Start: start, End: r.env.Now(), Error: err.Error()})
	return err
}
