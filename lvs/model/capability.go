package model

import (
	"fmt"
	"slices"
	"strings"
)

// Capabilities says what a backend can express.
type Capabilities struct {
	Schedulers  []Scheduler
	Forwards    []Forward
	FWMark      bool
	IPv6        bool
	Persistence bool
	// MaxWeight is the largest weight the backend takes as is; larger
	// weights are an error. (Both backends take 0..65535.)
	MaxWeight uint32
}

// Backend names.
const (
	BackendIPVS     = "ipvs"
	BackendNFTables = "nftables"
)

// Backends is the static capability table of every backend replicad ships,
// in order of preference for automatic choice. Capability errors name the
// backends in this table that can do what was asked.
var Backends = []struct {
	Name string
	Caps Capabilities
}{
	{BackendIPVS, Capabilities{
		Schedulers:  []Scheduler{RR, WRR, LC, WLC, SED, NQ, SH, DH, LBLC, LBLCR, MH},
		Forwards:    []Forward{NAT, DR, Tunnel},
		FWMark:      true,
		IPv6:        true,
		Persistence: true,
		MaxWeight:   65535,
	}},
	{BackendNFTables, Capabilities{
		// Stateless rules: numgen and jhash. No connection counts, so no
		// lc/wlc/sed/nq/lblc/lblcr; no Maglev table, so no mh.
		Schedulers:  []Scheduler{RR, WRR, SH, DH, Random},
		Forwards:    []Forward{NAT},
		FWMark:      true,
		IPv6:        true,
		Persistence: true,
		MaxWeight:   65535,
	}},
}

// CapabilitiesOf returns the capabilities of a backend named in Backends.
func CapabilitiesOf(backend string) (Capabilities, bool) {
	for _, b := range Backends {
		if b.Name == backend {
			return b.Caps, true
		}
	}
	return Capabilities{}, false
}

// UnsupportedError says which feature a backend lacks and which backends
// have it. It wraps ErrUnsupported.
type UnsupportedError struct {
	Service     Key
	Backend     string
	Feature     string // "scheduler", "forwarding", "fwmark", "ipv6", "persistence", "weight"
	Value       string
	SupportedBy []string // backends that can; may be empty
}

func (e *UnsupportedError) Error() string {
	who := "no backend supports it"
	if len(e.SupportedBy) > 0 {
		who = "supported by: " + strings.Join(e.SupportedBy, ", ")
	}
	return fmt.Sprintf("service %s: %s %q not supported by backend %s; %s", e.Service, e.Feature, e.Value, e.Backend, who)
}

func (e *UnsupportedError) Unwrap() error { return ErrUnsupported }

// Check returns an *UnsupportedError for the first thing in s that c cannot
// express, or nil.
func (c Capabilities) Check(backend string, s Service) error {
	fail := func(feature, value string, ok func(Capabilities) bool) error {
		var by []string
		for _, b := range Backends {
			if ok(b.Caps) {
				by = append(by, b.Name)
			}
		}
		return &UnsupportedError{Service: s.Key, Backend: backend, Feature: feature, Value: value, SupportedBy: by}
	}
	if !slices.Contains(c.Schedulers, s.Scheduler) {
		sch := s.Scheduler
		return fail("scheduler", string(sch), func(c Capabilities) bool { return slices.Contains(c.Schedulers, sch) })
	}
	if s.Key.IsFWMark() && !c.FWMark {
		return fail("fwmark", fmt.Sprint(s.Key.FWMark), func(c Capabilities) bool { return c.FWMark })
	}
	if s.Key.Family == IPv6 && !c.IPv6 {
		return fail("family", "ipv6", func(c Capabilities) bool { return c.IPv6 })
	}
	if s.Persistence.Enabled() && !c.Persistence {
		return fail("persistence", s.Persistence.Timeout.String(), func(c Capabilities) bool { return c.Persistence })
	}
	for _, rs := range s.RealServers {
		if !slices.Contains(c.Forwards, rs.Forward) {
			f := rs.Forward
			return fail("forwarding", string(f), func(c Capabilities) bool { return slices.Contains(c.Forwards, f) })
		}
		if rs.Weight > c.MaxWeight {
			w := rs.Weight
			return fail("weight", fmt.Sprint(w), func(c Capabilities) bool { return w <= c.MaxWeight })
		}
	}
	return nil
}

// CheckBackend checks every service against a backend named in Backends.
// It returns the first problem, or ErrUnknownBackend.
func CheckBackend(backend string, services []Service) error {
	c, ok := CapabilitiesOf(backend)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownBackend, backend)
	}
	for _, s := range services {
		if err := c.Check(backend, s); err != nil {
			return err
		}
	}
	return nil
}
