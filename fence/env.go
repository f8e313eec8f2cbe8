package fence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/replicad/replicad/fence/plan"
	"github.com/replicad/replicad/internal/clock"
)

// agentEnv is plan.Env over real agents: the Fencer's clock for waits and
// timeouts, the device agents for calls, and the operation's context for
// stopping (Close, Confirm).
type agentEnv struct {
	f   *Fencer
	ctx context.Context
}

var _ plan.Env = (*agentEnv)(nil)

func (e *agentEnv) Now() time.Time { return e.f.clock.Now() }

func (e *agentEnv) aborted() error {
	return fmt.Errorf("%w: %w", plan.ErrAborted, context.Cause(e.ctx))
}

func (e *agentEnv) Wait(d time.Duration, _ string) error {
	if !clock.Sleep(e.f.clock, d, e.ctx.Done()) {
		return e.aborted()
	}
	return nil
}

// call runs fn with the device timeout, and classifies its error: the
// operation being stopped wins over anything the agent said.
func (e *agentEnv) call(c plan.Call, fn func(ctx context.Context, a Agent) error) error {
	d := e.f.devices[c.Device]
	ctx, cancel := withClockTimeout(e.ctx, e.f.clock, c.Timeout)
	err := fn(ctx, d.agent)
	cause := context.Cause(ctx)
	cancel()
	switch {
	case e.ctx.Err() != nil:
		return e.aborted()
	case err != nil && cause != nil && errors.Is(cause, ErrTimeout) && !errors.Is(err, ErrTimeout):
		return fmt.Errorf("%w (%v)", cause, err)
	}
	return err
}

func (e *agentEnv) Power(c plan.Call) error {
	return e.call(c, func(ctx context.Context, a Agent) error { return a.Power(ctx, c.Action, c.Port) })
}

func (e *agentEnv) Status(c plan.Call) (plan.State, error) {
	var st plan.State
	err := e.call(c, func(ctx context.Context, a Agent) error {
		var err error
		st, err = a.Status(ctx, c.Port)
		return err
	})
	return st, err
}
