package health

import (
	"net/netip"

	"github.com/replicad/replicad/lvs/model"
)

// OnFailure is what happens to a real server that is Down.
type OnFailure string

// Failure policies.
const (
	// Quiesce keeps the server at weight 0: established connections stay,
	// new ones go elsewhere (ldirectord's quiescent=yes, keepalived's
	// inhibit_on_failure).
	Quiesce OnFailure = "quiesce"
	// Remove deletes the server from the service.
	Remove OnFailure = "remove"
)

// Policy is a service's reaction to health.
type Policy struct {
	OnFailure OnFailure
	// Sorry, when set, takes every new connection while no real server
	// with a configured weight > 0 is Up. It is not health-checked.
	Sorry *model.RealServer
}

// Effective returns the service the kernel should hold: base (the
// configured service) with Down servers quiesced or removed, and the sorry
// server added when no configured server can take connections. state
// reports a server's health; servers it does not know (no check
// configured) count as Up.
func Effective(base model.Service, p Policy, state func(netip.AddrPort) (State, bool)) model.Service {
	out := base.Clone()
	out.RealServers = out.RealServers[:0]
	serving := 0
	for _, rs := range base.RealServers {
		if st, ok := state(rs.Addr); ok && st == Down {
			if p.OnFailure == Remove {
				continue
			}
			rs.Weight = 0
		}
		if rs.Weight > 0 {
			serving++
		}
		out.RealServers = append(out.RealServers, rs)
	}
	if serving == 0 && p.Sorry != nil {
		sorry := *p.Sorry
		if sorry.Weight == 0 {
			sorry.Weight = 1
		}
		out.RealServers = append(out.RealServers, sorry)
	}
	out.Normalize()
	return out
}
