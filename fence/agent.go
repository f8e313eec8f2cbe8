package fence

import (
	"context"

	"github.com/replicad/replicad/fence/agentproto"
	"github.com/replicad/replicad/fence/plan"
)

// State is a target's power state as a status call reports it.
type State = plan.State

// Power states.
const (
	StateUnknown = plan.StateUnknown
	StateOn      = plan.StateOn
	StateOff     = plan.StateOff
)

// Action is what a fence operation does to its target.
type Action = plan.Action

// Actions.
const (
	ActionOff    = plan.Off
	ActionOn     = plan.On
	ActionReboot = plan.Reboot
)

// Agent drives one fence device. port is the plug that fences the target
// (empty for a device that fences exactly one node). Calls honour ctx; the
// Fencer gives each call a deadline from the device timeout.
type Agent interface {
	// Power switches the port off or on (plan.Off, plan.On). It does not
	// have to wait for the new state: the Fencer verifies off itself.
	Power(ctx context.Context, a Action, port string) error
	// Status reports the port's power state.
	Status(ctx context.Context, port string) (State, error)
	// Monitor checks that the device is reachable and accepts the login.
	Monitor(ctx context.Context) error
}

// Lister is an Agent that can list the ports it controls.
type Lister interface {
	List(ctx context.Context) ([]agentproto.Plug, error)
}

// Describer is an Agent that describes itself with fence-agents metadata.
type Describer interface {
	Metadata(ctx context.Context) (*agentproto.Metadata, error)
}
