package lvs

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/replicad/replicad/lvs/model"
)

// Status is what `repctl lvs list` shows (and `--json` prints).
type Status struct {
	Backend       string          `json:"backend"`
	BackendReason string          `json:"backend_reason"`
	LastReconcile time.Time       `json:"last_reconcile"`
	LastError     string          `json:"last_error,omitempty"`
	Services      []ServiceStatus `json:"services"`
	// Unmanaged lists services in the kernel that are not configured:
	// foreign ones (left alone) and, on IPVS, ones replicad created and
	// will delete on the next reconcile.
	Unmanaged []string `json:"unmanaged,omitempty"`
}

// ServiceStatus is one configured service.
type ServiceStatus struct {
	Name        string             `json:"name"`
	Key         string             `json:"key"` // tcp/10.0.0.100:3306, fwmark/7/ipv4
	Scheduler   string             `json:"scheduler"`
	Persistence string             `json:"persistence,omitempty"` // "300s/24"
	OnFailure   string             `json:"on_failure"`
	SorryServer string             `json:"sorry_server,omitempty"`
	SorryActive bool               `json:"sorry_active"`
	InKernel    bool               `json:"in_kernel"`
	Stats       model.Stats        `json:"stats"`
	RealServers []RealServerStatus `json:"real_servers"`
}

// RealServerStatus is one real server (or the sorry server).
type RealServerStatus struct {
	Address string `json:"address"`
	Forward string `json:"forward"`
	// Weight is the configured weight; EffectiveWeight what health makes
	// of it (nil: removed from the kernel); KernelWeight what the kernel
	// holds now (nil: absent).
	Weight          uint32      `json:"weight"`
	EffectiveWeight *uint32     `json:"effective_weight"`
	KernelWeight    *uint32     `json:"kernel_weight"`
	Sorry           bool        `json:"sorry,omitempty"`
	Check           string      `json:"check"`  // none, tcp, http, ...
	Health          string      `json:"health"` // up, down, unchecked
	Checks          uint64      `json:"checks"`
	LastCheck       time.Time   `json:"last_check,omitzero"`
	LastError       string      `json:"last_error,omitempty"`
	LastChange      time.Time   `json:"last_change,omitzero"`
	Stats           model.Stats `json:"stats"`
}

// Status reads the kernel's counters and reports every configured service
// with its real servers' weights, health and counters.
func (m *Manager) Status(ctx context.Context) (Status, error) {
	m.reconcileMu.Lock()
	obs, err := m.backend.Observe(ctx)
	m.reconcileMu.Unlock()
	if err != nil {
		return Status{}, err
	}
	byKey := map[model.Key]model.Observed{}
	for _, o := range obs {
		byKey[o.Key] = o
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := Status{Backend: m.choice.Name, BackendReason: m.choice.Reason, LastReconcile: m.mu.lastReconcile}
	if m.mu.lastErr != nil {
		st.LastError = m.mu.lastErr.Error()
	}
	desired := m.desiredLocked()
	configured := map[model.Key]bool{}
	for i, s := range m.mu.specs {
		configured[s.svc.Key] = true
		eff := desired[i]
		o, inKernel := byKey[s.svc.Key]
		ss := ServiceStatus{
			Name: s.name, Key: s.svc.Key.String(), Scheduler: string(s.svc.Scheduler),
			OnFailure: string(s.policy.OnFailure), InKernel: inKernel, Stats: o.Stats,
		}
		if p := s.svc.Persistence; p.Enabled() {
			ss.Persistence = p.Timeout.String() + "/" + strconv.Itoa(p.PrefixLen)
		}
		rows := slices.Clone(s.svc.RealServers)
		if s.policy.Sorry != nil {
			ss.SorryServer = s.policy.Sorry.Addr.String()
			rows = append(rows, *s.policy.Sorry)
		}
		for j, rs := range rows {
			sorry := s.policy.Sorry != nil && j == len(rows)-1
			row := RealServerStatus{Address: rs.Addr.String(), Forward: string(rs.Forward), Weight: rs.Weight, Sorry: sorry, Check: "none", Health: "unchecked"}
			if sorry {
				row.Weight = 0
			}
			if e, ok := eff.RealServer(rs.Addr); ok {
				w := e.Weight
				row.EffectiveWeight = &w
				if sorry {
					ss.SorryActive = true
				}
			}
			if k, ok := o.RealServer(rs.Addr); ok && inKernel {
				w := k.Weight
				row.KernelWeight = &w
				row.Stats = o.RealServerStats[rs.Addr]
			}
			if cs, ok := s.checks[rs.Addr]; ok && !sorry {
				row.Check = cs.cfg.Type
				if h, err := m.mu.tracker.Status(targetID(s.name, rs.Addr)); err == nil {
					row.Health = h.State.String()
					row.Checks = h.Checks
					row.LastCheck = h.LastCheck
					row.LastError = h.LastError
					row.LastChange = h.LastChanged
				}
			}
			ss.RealServers = append(ss.RealServers, row)
		}
		st.Services = append(st.Services, ss)
	}
	for _, o := range obs {
		if !configured[o.Key] {
			st.Unmanaged = append(st.Unmanaged, o.Key.String())
		}
	}
	slices.Sort(st.Unmanaged)
	return st, nil
}

// HealthOf returns the health of one real server: "up", "down" or
// "unchecked".
func (m *Manager) HealthOf(service string, addr netip.AddrPort) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, err := m.mu.tracker.Status(targetID(service, addr))
	if err != nil {
		return "unchecked"
	}
	return h.State.String()
}
