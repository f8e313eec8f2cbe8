package lvs

import (
	"context"
	"fmt"
	"os"

	"github.com/cloudflare/ipvs"

	"github.com/replicad/replicad/lvs/model"
	"github.com/replicad/replicad/lvs/plan"
)

// Backend is a kernel load-balancing table. Implementations: *IPVS and
// *NFTables.
type Backend interface {
	// Name is the backend's name in model.Backends.
	Name() string
	// Observe reads the virtual services the backend can see, with
	// counters. Services replicad does not own are reported with
	// Owned=false.
	Observe(ctx context.Context) ([]model.Observed, error)
	// Apply carries out a plan computed against the last Observe. desired
	// is the whole desired state the plan leads to.
	Apply(ctx context.Context, desired []model.Service, ops []plan.Op) error
	// Close releases the backend's kernel connection. It does not touch
	// the kernel's tables.
	Close() error
}

// BackendChoice is the outcome of ChooseBackend.
type BackendChoice struct {
	Name   string
	Reason string
}

// ChooseBackend picks the backend for a configuration. setting is
// Config.Backend; ipvsErr is nil when ip_vs is usable on this kernel (see
// ProbeIPVS). With "auto", IPVS is preferred where it exists and can run
// every service; otherwise nftables. The reason says why, for the log.
func ChooseBackend(setting string, ipvsErr error, services []model.Service) (BackendChoice, error) {
	switch setting {
	case model.BackendIPVS:
		if ipvsErr != nil {
			return BackendChoice{}, fmt.Errorf("%w: backend ipvs configured but ip_vs is not usable: %v", ErrBackendUnavailable, ipvsErr)
		}
		if err := model.CheckBackend(model.BackendIPVS, services); err != nil {
			return BackendChoice{}, err
		}
		return BackendChoice{model.BackendIPVS, "configured (backend: ipvs)"}, nil
	case model.BackendNFTables:
		if err := model.CheckBackend(model.BackendNFTables, services); err != nil {
			return BackendChoice{}, err
		}
		return BackendChoice{model.BackendNFTables, "configured (backend: nftables)"}, nil
	case "auto", "":
	default:
		return BackendChoice{}, fmt.Errorf("%w: backend %q", ErrInvalidConfig, setting)
	}
	ipvsFits := model.CheckBackend(model.BackendIPVS, services)
	nftFits := model.CheckBackend(model.BackendNFTables, services)
	switch {
	case ipvsErr == nil && ipvsFits == nil:
		return BackendChoice{model.BackendIPVS, "auto: ip_vs is available"}, nil
	case nftFits == nil && ipvsErr != nil:
		return BackendChoice{model.BackendNFTables, "auto: ip_vs unavailable (" + ipvsErr.Error() + ")"}, nil
	case nftFits == nil:
		return BackendChoice{model.BackendNFTables, "auto: ip_vs is available but cannot run the configuration (" + ipvsFits.Error() + ")"}, nil
	case ipvsErr == nil:
		return BackendChoice{}, ipvsFits
	}
	return BackendChoice{}, fmt.Errorf("%w (and ip_vs is unavailable: %v)", nftFits, ipvsErr)
}

// ProbeIPVS reports whether ip_vs is usable in the network namespace at
// netnsPath ("" for the current one): nil if /proc/net/ip_vs exists or the
// IPVS generic-netlink family answers (which loads the module where it is
// installed).
func ProbeIPVS(netnsPath string) error {
	return inNetNS(netnsPath, func() error {
		if _, err := os.Stat("/proc/thread-self/net/ip_vs"); err == nil {
			return nil
		}
		c, err := ipvs.New()
		if err != nil {
			return fmt.Errorf("/proc/net/ip_vs absent and the IPVS netlink family is missing: %w", err)
		}
		if closer, ok := c.(interface{ Close() error }); ok {
			defer closer.Close()
		}
		if _, err := c.Info(); err != nil {
			return fmt.Errorf("IPVS info: %w", err)
		}
		return nil
	})
}
