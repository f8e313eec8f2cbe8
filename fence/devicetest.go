package fence

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/replicad/replicad/fence/agentproto"
	"github.com/replicad/replicad/fence/topology"
)

// DeviceTest is the result of Test: the monitor call and a status call for
// every target of the device.
type DeviceTest struct {
	Device  string         `json:"device"`
	OK      bool           `json:"ok"`
	Monitor string         `json:"monitor"` // "ok" or the error
	Targets []TargetStatus `json:"targets"`
}

// TargetStatus is one target's power state as the device reports it.
type TargetStatus struct {
	Target string `json:"target"`
	Port   string `json:"port"`
	State  string `json:"state"` // on, off or unknown
	Error  string `json:"error,omitempty"`
}

// Test checks a device without fencing anything: monitor, then status of
// each target it can fence. A failed check is reported in the result (OK
// false), not as an error; the error is for an unknown device or ctx.
func (f *Fencer) Test(ctx context.Context, name string) (DeviceTest, error) {
	d, err := f.device(name)
	if err != nil {
		return DeviceTest{}, err
	}
	res := DeviceTest{Device: name, OK: true, Monitor: "ok"}
	cctx, cancel := withClockTimeout(ctx, f.clock, d.cfg.Timeout)
	err = d.agent.Monitor(cctx)
	cancel()
	if err != nil {
		res.OK, res.Monitor = false, err.Error()
	}
	td := topology.Device{Name: name, Hosts: d.cfg.Hosts, Ports: d.cfg.hostMap()}
	for _, t := range td.Targets() {
		port, _ := td.Port(t)
		ts := TargetStatus{Target: t, Port: port}
		cctx, cancel := withClockTimeout(ctx, f.clock, d.cfg.Timeout)
		st, err := d.agent.Status(cctx, port)
		cancel()
		ts.State = st.String()
		if err != nil {
			res.OK, ts.Error = false, err.Error()
		}
		res.Targets = append(res.Targets, ts)
	}
	return res, ctx.Err()
}

// List asks a device for the ports it controls (the agent's list action).
func (f *Fencer) List(ctx context.Context, name string) ([]agentproto.Plug, error) {
	d, err := f.device(name)
	if err != nil {
		return nil, err
	}
	l, ok := d.agent.(Lister)
	if !ok || !d.meta.Supports(agentproto.ActionList) {
		return nil, fmt.Errorf("%w: %s (%s) has no list action", ErrUnsupported, name, d.meta.Name)
	}
	cctx, cancel := withClockTimeout(ctx, f.clock, d.cfg.Timeout)
	defer cancel()
	return l.List(cctx)
}

var secretRE = regexp.MustCompile(`pass|secret|key|token|community|credential|auth|kg`)

// isSecret reports whether an agent parameter probably holds a secret.
func isSecret(name string) bool {
	n := strings.ToLower(name)
	return secretRE.MatchString(n) && !strings.HasSuffix(n, "_script") && !strings.HasSuffix(n, "-script") && n != "auth"
}
