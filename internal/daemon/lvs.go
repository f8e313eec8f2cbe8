package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/lvs"
	"github.com/replicad/replicad/lvs/model"
)

// The load balancer (docs/lvs.md): the daemon runs an lvs.Manager for the
// config's lvs section and serves /v1/lvs for `repctl lvs`. Runtime edits
// change the running configuration only; GET /v1/lvs says when it differs
// from the config file, and GET /v1/lvs/config returns it in the file's
// format for the operator to keep.

// lvsState is the daemon's part of the load balancer.
type lvsState struct {
	// fileYAML is the config file's lvs section as EncodeYAML writes it:
	// what a restart would go back to.
	fileYAML []byte
	mu       struct {
		sync.Mutex
		m *lvs.Manager // nil before Run starts it and after shutdown
	}
}

// lvsProblems validates the lvs section; its problems already name their
// fields ("lvs.services[0].weight: ...").
func (c *Config) lvsProblems() []string {
	if c.LVS == nil {
		return nil
	}
	err := c.LVS.Validate()
	var ve *lvs.ValidationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ve):
		return ve.Problems
	}
	return []string{"lvs: " + err.Error()}
}

// startLVS opens the backend, reconciles once and starts the health and
// resync loops. The returned stop function leaves the kernel tables as
// they are, so that a restart neither flushes them nor breaks connections.
// A failing first reconcile is not fatal: the manager logs it and retries.
func (d *Daemon) startLVS(ctx context.Context) (stop func(), err error) {
	if d.cfg.LVS == nil {
		return func() {}, nil
	}
	if d.lvs.fileYAML, err = d.cfg.LVS.EncodeYAML(); err != nil {
		return nil, fmt.Errorf("lvs: %w", err)
	}
	log := d.log.With("subsystem", "lvs")
	m, err := lvs.New(*d.cfg.LVS, lvs.Options{
		Logger:  log,
		Backend: d.opts.LVSBackend,
		OnHealthChange: func(e lvs.HealthEvent) {
			log.Info("lvs: real server health changed", "service", e.Service, "real_server", e.RealServer, "from", e.From, "to", e.To, "reason", e.Reason)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("lvs: %w", err)
	}
	m.Start(ctx) // logs its own failure; the resync loop retries
	d.lvs.mu.Lock()
	d.lvs.mu.m = m
	d.lvs.mu.Unlock()
	return func() {
		d.lvs.mu.Lock()
		d.lvs.mu.m = nil
		d.lvs.mu.Unlock()
		if err := m.Close(); err != nil {
			log.Warn("lvs: closing the backend", "err", err)
		}
	}, nil
}

// lvsManager returns the running manager or an error that says why there
// is none.
func (d *Daemon) lvsManager() (*lvs.Manager, error) {
	if d.cfg.LVS == nil {
		return nil, control.Errorf(http.StatusNotFound,
			"add an lvs section to replicad's config (\"lvs: {}\" for none yet; see docs/configuration.md and dist/replicad.yaml) and restart replicad",
			"load balancing is not enabled on this node")
	}
	d.lvs.mu.Lock()
	defer d.lvs.mu.Unlock()
	if d.lvs.mu.m == nil {
		return nil, control.Errorf(http.StatusServiceUnavailable, "try again in a moment", "the load balancer is not running (replicad is starting or stopping)")
	}
	return d.lvs.mu.m, nil
}

// lvsError gives a Manager error its HTTP status and a hint.
func lvsError(err error) error {
	var se *control.StatusError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return err
	case errors.Is(err, lvs.ErrNotFound):
		return control.WithStatus(http.StatusNotFound, "`repctl lvs list` shows the configured services and real servers", err)
	case errors.Is(err, lvs.ErrExists):
		return control.WithStatus(http.StatusConflict, "change it with `repctl lvs edit-service` or `repctl lvs edit-rs`", err)
	case errors.Is(err, lvs.ErrInvalidConfig), errors.Is(err, model.ErrUnsupported):
		return control.WithStatus(http.StatusBadRequest, "nothing was changed", err)
	case errors.Is(err, lvs.ErrClosed):
		return control.WithStatus(http.StatusServiceUnavailable, "replicad is stopping", err)
	}
	return control.WithStatus(http.StatusInternalServerError,
		"the configuration (with any change just accepted) is kept; replicad retries every resync-interval (`repctl lvs list` shows the last error)",
		fmt.Errorf("kernel load-balancing tables: %w", err))
}

// LVSStatus reports the load balancer.
func (d *Daemon) LVSStatus(ctx context.Context) (control.LVSStatus, error) {
	m, err := d.lvsManager()
	if err != nil {
		return control.LVSStatus{}, err
	}
	st, err := m.Status(ctx)
	if err != nil {
		return control.LVSStatus{}, lvsError(err)
	}
	cur, err := m.Config().EncodeYAML()
	if err != nil {
		return control.LVSStatus{}, err
	}
	return control.LVSStatus{Status: st, DiffersFromConfigFile: !bytes.Equal(cur, d.lvs.fileYAML)}, nil
}

// lvsConfigYAML is the running lvs configuration as a section of
// replicad's config file.
func (d *Daemon) lvsConfigYAML(m *lvs.Manager) (string, error) {
	body, err := m.Config().EncodeYAML()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# lvs section of replicad's configuration: node %s, %s.\n", d.cfg.Node.Name, time.Now().UTC().Format(time.RFC3339))
	b.WriteString("# Replace the lvs section of the config file with it to keep it over a\n# restart, or apply it with `repctl lvs restore FILE`.\n")
	b.WriteString("lvs:\n")
	for _, l := range strings.SplitAfter(string(body), "\n") {
		if l != "" && l != "\n" {
			b.WriteString("  ")
		}
		b.WriteString(l)
	}
	return b.String(), nil
}

// parseLVSDocument reads what `repctl lvs restore` sends: an lvs section
// under a top-level "lvs" key (what save writes, or replicad's whole
// config file, whose other sections are ignored), or the section's keys at
// the top level.
func parseLVSDocument(doc string) (lvs.Config, error) {
	var raw map[string]any
	if err := yaml.Unmarshal([]byte(doc), &raw); err != nil {
		return lvs.Config{}, fmt.Errorf("%w: yaml: %v", lvs.ErrInvalidConfig, err)
	}
	if section, ok := raw["lvs"]; ok {
		return lvs.DecodeConfig(section)
	}
	return lvs.DecodeConfig(raw)
}

// VIPs reports each configured VIP's state on this node: whether the
// address is on its interface and the interface is up. The daemon does not
// acquire VIPs; the cluster manager will.
func (d *Daemon) lvsVIPs(ctx context.Context, m *lvs.Manager) map[string]control.LVSVIPState {
	out := map[string]control.LVSVIPState{}
	for _, vc := range m.Config().VIPs {
		s := control.LVSVIPState{Address: vc.Address, Interface: vc.Interface}
		v, err := lvs.NewVIP(vc, lvs.VIPOptions{Logger: d.log})
		if err == nil {
			s.VIPState, err = v.Check(ctx)
			v.Close()
		}
		if err != nil {
			s.Problem = err.Error()
		}
		out[vc.Name] = s
	}
	return out
}

func (d *Daemon) lvsRoutes() {
	// with wraps a handler that needs the running manager.
	with := func(f func(r *http.Request, m *lvs.Manager) (any, error)) http.Handler {
		return control.Handle(d.log, func(r *http.Request) (any, error) {
			m, err := d.lvsManager()
			if err != nil {
				return nil, err
			}
			out, err := f(r, m)
			return out, lvsError(err)
		})
	}
	service := func(m *lvs.Manager, name string) (any, error) {
		sc, err := m.Service(name)
		return sc, err
	}
	d.mux.Handle("GET /v1/lvs", control.Handle(d.log, func(r *http.Request) (any, error) { return d.LVSStatus(r.Context()) }))
	d.mux.Handle("GET /v1/lvs/services/{name}", with(func(r *http.Request, m *lvs.Manager) (any, error) {
		return service(m, r.PathValue("name"))
	}))
	d.mux.Handle("POST /v1/lvs/services", with(func(r *http.Request, m *lvs.Manager) (any, error) {
		var sc lvs.ServiceConfig
		if err := control.DecodeBody(r, &sc); err != nil {
			return nil, err
		}
		if err := m.AddService(r.Context(), sc); err != nil {
			return nil, err
		}
		return service(m, sc.Name)
	}))
	d.mux.Handle("PUT /v1/lvs/services/{name}", with(func(r *http.Request, m *lvs.Manager) (any, error) {
		var sc lvs.ServiceConfig
		if err := control.DecodeBody(r, &sc); err != nil {
			return nil, err
		}
		if err := m.UpdateService(r.Context(), r.PathValue("name"), sc); err != nil {
			return nil, err
		}
		return service(m, sc.Name)
	}))
	d.mux.Handle("DELETE /v1/lvs/services/{name}", with(func(r *http.Request, m *lvs.Manager) (any, error) {
		return struct{}{}, m.DeleteService(r.Context(), r.PathValue("name"))
	}))
	d.mux.Handle("POST /v1/lvs/services/{name}/real-servers", with(func(r *http.Request, m *lvs.Manager) (any, error) {
		var rc lvs.RealServerConfig
		if err := control.DecodeBody(r, &rc); err != nil {
			return nil, err
		}
		if err := m.AddRealServer(r.Context(), r.PathValue("name"), rc); err != nil {
			return nil, err
		}
		return service(m, r.PathValue("name"))
	}))
	d.mux.Handle("PUT /v1/lvs/services/{name}/real-servers/{addr}", with(func(r *http.Request, m *lvs.Manager) (any, error) {
		var rc lvs.RealServerConfig
		if err := control.DecodeBody(r, &rc); err != nil {
			return nil, err
		}
		if err := m.UpdateRealServer(r.Context(), r.PathValue("name"), r.PathValue("addr"), rc); err != nil {
			return nil, err
		}
		return service(m, r.PathValue("name"))
	}))
	d.mux.Handle("DELETE /v1/lvs/services/{name}/real-servers/{addr}", with(func(r *http.Request, m *lvs.Manager) (any, error) {
		if err := m.DeleteRealServer(r.Context(), r.PathValue("name"), r.PathValue("addr")); err != nil {
			return nil, err
		}
		return service(m, r.PathValue("name"))
	}))
	d.mux.Handle("GET /v1/lvs/config", with(func(r *http.Request, m *lvs.Manager) (any, error) {
		y, err := d.lvsConfigYAML(m)
		return control.LVSConfigDocument{YAML: y}, err
	}))
	d.mux.Handle("PUT /v1/lvs/config", with(func(r *http.Request, m *lvs.Manager) (any, error) {
		var doc control.LVSConfigDocument
		if err := control.DecodeBody(r, &doc); err != nil {
			return nil, err
		}
		cfg, err := parseLVSDocument(doc.YAML)
		if err != nil {
			return nil, err
		}
		if err := m.SetConfig(r.Context(), cfg); err != nil {
			return nil, err
		}
		y, err := d.lvsConfigYAML(m)
		return control.LVSConfigDocument{YAML: y}, err
	}))
	d.mux.Handle("POST /v1/lvs/reconcile", with(func(r *http.Request, m *lvs.Manager) (any, error) {
		res, err := m.Reconcile(r.Context())
		out := control.LVSReconcileResult{Ops: []string{}}
		for _, op := range res.Ops {
			out.Ops = append(out.Ops, op.String())
		}
		return out, err
	}))
	d.mux.Handle("GET /v1/lvs/vips", with(func(r *http.Request, m *lvs.Manager) (any, error) {
		return d.lvsVIPs(r.Context(), m), nil
	}))
}
