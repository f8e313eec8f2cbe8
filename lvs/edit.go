package lvs

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/replicad/replicad/lvs/model"
)

// Config returns the current configuration (what `repctl lvs save` writes).
func (m *Manager) Config() Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneConfig(m.mu.cfg)
}

// Service returns the configuration of one service.
func (m *Manager) Service(name string) (ServiceConfig, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.IndexFunc(m.mu.cfg.Services, func(s ServiceConfig) bool { return s.Name == name })
	if i < 0 {
		return ServiceConfig{}, fmt.Errorf("%w: service %q", ErrNotFound, name)
	}
	return cloneService(m.mu.cfg.Services[i]), nil
}

// SetConfig replaces the whole configuration (`repctl lvs restore`) and
// reconciles. The backend settings (backend, nftables-table,
// ipvs-state-file) cannot change at runtime.
func (m *Manager) SetConfig(ctx context.Context, cfg Config) error {
	return m.edit(ctx, func(cur *Config) error {
		if cfg.Backend != cur.Backend || cfg.NFTablesTable != cur.NFTablesTable || cfg.IPVSStateFile != cur.IPVSStateFile {
			return fmt.Errorf("%w: backend, nftables-table and ipvs-state-file cannot change while replicad runs (have %s/%s/%q, got %s/%s/%q); restart replicad to change them",
				ErrInvalidConfig, cur.Backend, cur.NFTablesTable, cur.IPVSStateFile, cfg.Backend, cfg.NFTablesTable, cfg.IPVSStateFile)
		}
		*cur = cloneConfig(cfg)
		return nil
	})
}

// AddService adds a service and reconciles.
func (m *Manager) AddService(ctx context.Context, sc ServiceConfig) error {
	return m.edit(ctx, func(c *Config) error {
		if slices.ContainsFunc(c.Services, func(s ServiceConfig) bool { return s.Name == sc.Name }) {
			return fmt.Errorf("%w: service %q", ErrExists, sc.Name)
		}
		c.Services = append(c.Services, cloneService(sc))
		return nil
	})
}

// UpdateService replaces the configuration of service name (sc may rename
// it) and reconciles. To change a few fields, read it with Service, change
// them, and pass it back.
func (m *Manager) UpdateService(ctx context.Context, name string, sc ServiceConfig) error {
	return m.edit(ctx, func(c *Config) error {
		i, err := serviceIndex(c, name)
		if err != nil {
			return err
		}
		if sc.Name != name && slices.ContainsFunc(c.Services, func(s ServiceConfig) bool { return s.Name == sc.Name }) {
			return fmt.Errorf("%w: service %q", ErrExists, sc.Name)
		}
		c.Services[i] = cloneService(sc)
		return nil
	})
}

// DeleteService removes a service and reconciles.
func (m *Manager) DeleteService(ctx context.Context, name string) error {
	return m.edit(ctx, func(c *Config) error {
		i, err := serviceIndex(c, name)
		if err != nil {
			return err
		}
		c.Services = slices.Delete(c.Services, i, i+1)
		return nil
	})
}

// AddRealServer adds a real server to a service and reconciles.
func (m *Manager) AddRealServer(ctx context.Context, service string, rc RealServerConfig) error {
	return m.edit(ctx, func(c *Config) error {
		i, err := serviceIndex(c, service)
		if err != nil {
			return err
		}
		sc := &c.Services[i]
		addr, err := realServerAddr(*sc, rc.Address)
		if err != nil {
			return err
		}
		if _, err := realServerIndex(*sc, addr); err == nil {
			return fmt.Errorf("%w: real server %s in service %q", ErrExists, addr, service)
		}
		sc.RealServers = append(sc.RealServers, cloneRealServer(rc))
		return nil
	})
}

// UpdateRealServer replaces one real server's configuration (rc may change
// its address) and reconciles.
func (m *Manager) UpdateRealServer(ctx context.Context, service, address string, rc RealServerConfig) error {
	return m.edit(ctx, func(c *Config) error {
		sc, j, err := findRealServer(c, service, address)
		if err != nil {
			return err
		}
		sc.RealServers[j] = cloneRealServer(rc)
		return nil
	})
}

// findRealServer locates a service's real server by address.
func findRealServer(c *Config, service, address string) (*ServiceConfig, int, error) {
	i, err := serviceIndex(c, service)
	if err != nil {
		return nil, 0, err
	}
	sc := &c.Services[i]
	addr, err := realServerAddr(*sc, address)
	if err != nil {
		return nil, 0, err
	}
	j, err := realServerIndex(*sc, addr)
	if err != nil {
		return nil, 0, err
	}
	return sc, j, nil
}

// DeleteRealServer removes a real server and reconciles.
func (m *Manager) DeleteRealServer(ctx context.Context, service, address string) error {
	return m.edit(ctx, func(c *Config) error {
		sc, j, err := findRealServer(c, service, address)
		if err != nil {
			return err
		}
		sc.RealServers = slices.Delete(sc.RealServers, j, j+1)
		return nil
	})
}

// edit applies fn to a copy of the configuration, validates the result
// against the config rules and the running backend, installs it and
// reconciles. A rejected edit changes nothing. If the kernel update fails
// the new configuration stays (it is the desired state) and the error is
// returned; the resync loop retries.
func (m *Manager) edit(ctx context.Context, fn func(*Config) error) error {
	m.editMu.Lock()
	defer m.editMu.Unlock()
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	cfg := cloneConfig(m.mu.cfg)
	m.mu.Unlock()
	if err := fn(&cfg); err != nil {
		return err
	}
	specs, problems := cfg.compile()
	if len(problems) > 0 {
		return &ValidationError{Problems: problems}
	}
	if err := model.CheckBackend(m.backend.Name(), services(specs)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	m.mu.Lock()
	m.mu.cfg = cfg
	m.mu.specs = specs
	err := m.syncChecksLocked(m.clk.Now())
	m.mu.Unlock()
	if err != nil {
		return err
	}
	poke(m.healthKick)
	_, err = m.Reconcile(ctx)
	return err
}

func serviceIndex(c *Config, name string) (int, error) {
	i := slices.IndexFunc(c.Services, func(s ServiceConfig) bool { return s.Name == name })
	if i < 0 {
		return 0, fmt.Errorf("%w: service %q", ErrNotFound, name)
	}
	return i, nil
}

// realServerAddr resolves a real-server address as the config does: a
// missing port is the service's.
func realServerAddr(sc ServiceConfig, s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: real server address %q: want addr:port or addr", ErrInvalidConfig, s)
	}
	var port uint16
	if sc.FWMark == 0 {
		if ap, err := netip.ParseAddrPort(sc.Address); err == nil {
			port = ap.Port()
		}
	}
	return netip.AddrPortFrom(a.Unmap(), port), nil
}

func realServerIndex(sc ServiceConfig, addr netip.AddrPort) (int, error) {
	for j, rc := range sc.RealServers {
		if a, err := realServerAddr(sc, rc.Address); err == nil && a == addr {
			return j, nil
		}
	}
	return 0, fmt.Errorf("%w: real server %s in service %q", ErrNotFound, addr, sc.Name)
}

func cloneConfig(c Config) Config {
	c.VIPs = slices.Clone(c.VIPs)
	services := make([]ServiceConfig, len(c.Services))
	for i, s := range c.Services {
		services[i] = cloneService(s)
	}
	if c.Services != nil {
		c.Services = services
	}
	return c
}

func cloneService(s ServiceConfig) ServiceConfig {
	s.Check = cloneCheck(s.Check)
	if s.RealServers != nil {
		rs := make([]RealServerConfig, len(s.RealServers))
		for i, r := range s.RealServers {
			rs[i] = cloneRealServer(r)
		}
		s.RealServers = rs
	}
	return s
}

func cloneRealServer(r RealServerConfig) RealServerConfig {
	if r.Weight != nil {
		w := *r.Weight
		r.Weight = &w
	}
	if r.Check != nil {
		c := cloneCheck(*r.Check)
		r.Check = &c
	}
	return r
}

func cloneCheck(c CheckConfig) CheckConfig {
	c.ExpectStatus = slices.Clone(c.ExpectStatus)
	c.Command = slices.Clone(c.Command)
	return c
}
