package plan

import (
	"errors"
	"fmt"
	"time"
)

// simDevice is a simulated fence device. Its answers depend only on the
// attempt number of the power call, so a test (and the reference model)
// knows in advance what Run will see.
type simDevice struct {
	failOff map[int]bool // off attempt → the off call fails
	failOn  map[int]bool // on attempt → the on call fails
	// offAfter: off attempt → status checks answering "on" before "off"
	// (-1: never off). Missing means 0: off at the first check.
	offAfter  map[int]int
	statusErr bool // status calls fail instead of answering "on"

	remaining int // status checks still answering on
	off       bool
}

var errSim = errors.New("simulated agent failure")

// simEnv is a virtual clock and a set of simulated devices. Every agent call
// costs callCost of virtual time.
type simEnv struct {
	now      time.Time
	callCost time.Duration
	devs     map[string]*simDevice
	log      []string
	// abortAt aborts the run at the n-th Env call (1-based); 0 never.
	abortAt int
	calls   int
}

func newSim() *simEnv {
	return &simEnv{now: time.Unix(1000, 0), callCost: time.Second, devs: map[string]*simDevice{}}
}

func (e *simEnv) dev(name string) *simDevice {
	d := e.devs[name]
	if d == nil {
		d = &simDevice{}
		e.devs[name] = d
	}
	return d
}

func (e *simEnv) tick() error {
	e.calls++
	if e.abortAt != 0 && e.calls >= e.abortAt {
		return fmt.Errorf("confirmed by operator: %w", ErrAborted)
	}
	return nil
}

func (e *simEnv) Now() time.Time { return e.now }

func (e *simEnv) Wait(d time.Duration, why string) error {
	if err := e.tick(); err != nil {
		e.log = append(e.log, "abort")
		return err
	}
	e.log = append(e.log, fmt.Sprintf("wait %v %s", d, why))
	e.now = e.now.Add(d)
	return nil
}

func (e *simEnv) Power(c Call) error {
	if err := e.tick(); err != nil {
		e.log = append(e.log, "abort")
		return err
	}
	e.now = e.now.Add(e.callCost)
	d := e.dev(c.Device)
	e.log = append(e.log, fmt.Sprintf("L%d %s %s:%s #%d", c.Level, c.Action, c.Device, c.Port, c.Attempt))
	if c.Action == Off {
		if d.failOff[c.Attempt] {
			return errSim
		}
		d.off = true
		d.remaining = d.offAfter[c.Attempt]
		return nil
	}
	if d.failOn[c.Attempt] {
		return errSim
	}
	d.off = false
	return nil
}

func (e *simEnv) Status(c Call) (State, error) {
	if err := e.tick(); err != nil {
		e.log = append(e.log, "abort")
		return StateUnknown, err
	}
	e.now = e.now.Add(e.callCost)
	d := e.dev(c.Device)
	if d.off && d.remaining == 0 {
		e.log = append(e.log, fmt.Sprintf("L%d status %s = off", c.Level, c.Device))
		return StateOff, nil
	}
	if d.remaining > 0 {
		d.remaining--
	}
	if d.statusErr {
		e.log = append(e.log, fmt.Sprintf("L%d status %s = error", c.Level, c.Device))
		return StateUnknown, errSim
	}
	e.log = append(e.log, fmt.Sprintf("L%d status %s = on", c.Level, c.Device))
	return StateOn, nil
}
