package lvs

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"github.com/replicad/replicad/internal/clock"
	"github.com/replicad/replicad/lvs/health"
	"github.com/replicad/replicad/lvs/model"
	"github.com/replicad/replicad/lvs/plan"
)

// Options are the Manager's dependencies.
type Options struct {
	Logger *slog.Logger // default: discard
	Clock  clock.Clock  // default: clock.Real()
	// NetNS is the path of the network namespace whose kernel tables the
	// manager keeps and from which it runs checks ("" for its own).
	NetNS string
	// Backend overrides the automatic choice (tests, or a daemon that
	// opened it itself). The Manager closes it.
	Backend Backend
	// OnHealthChange is called (from the manager's goroutines, without
	// locks held) whenever a real server goes up or down.
	OnHealthChange func(HealthEvent)
}

// HealthEvent is a real server changing state.
type HealthEvent struct {
	Service    string         `json:"service"`
	RealServer netip.AddrPort `json:"real_server"`
	From       string         `json:"from"`
	To         string         `json:"to"`
	Reason     string         `json:"reason,omitempty"`
	At         time.Time      `json:"at"`
}

// Result says what a reconcile did.
type Result struct {
	Ops []plan.Op
}

type checkerEntry struct {
	spec    checkSpec
	checker Checker
	service string
	addr    netip.AddrPort
}

// Manager keeps the kernel's load-balancing tables equal to the configured
// services, adjusted by health checks. Its methods are safe for concurrent
// use. See the package documentation for the goroutines it runs.
type Manager struct {
	log      *slog.Logger
	clk      clock.Clock
	netns    string
	onHealth func(HealthEvent)
	backend  Backend
	choice   BackendChoice

	editMu      sync.Mutex // serialises read-modify-write of the config
	reconcileMu sync.Mutex // serialises kernel I/O (observe, plan, apply)

	mu struct {
		sync.Mutex
		cfg           Config
		specs         []serviceSpec
		tracker       *health.Tracker
		checkers      map[string]checkerEntry
		lastReconcile time.Time
		lastErr       error
		started       bool
		closed        bool
	}

	kick       chan struct{}
	healthKick chan struct{}
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// New validates cfg, chooses and opens the backend (logging which and why)
// and prepares the health checks. Nothing touches the kernel tables until
// Start or Reconcile.
func New(cfg Config, opts Options) (*Manager, error) {
	specs, problems := cfg.compile()
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	m := &Manager{
		log:        opts.Logger,
		clk:        opts.Clock,
		netns:      opts.NetNS,
		onHealth:   opts.OnHealthChange,
		backend:    opts.Backend,
		kick:       make(chan struct{}, 1),
		healthKick: make(chan struct{}, 1),
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.clk == nil {
		m.clk = clock.Real()
	}
	if m.backend != nil {
		if err := model.CheckBackend(m.backend.Name(), services(specs)); err != nil {
			return nil, err
		}
		m.choice = BackendChoice{Name: m.backend.Name(), Reason: "given by the caller"}
	} else {
		choice, err := ChooseBackend(cfg.Backend, ProbeIPVS(opts.NetNS), services(specs))
		if err != nil {
			return nil, err
		}
		m.choice = choice
		switch choice.Name {
		case model.BackendIPVS:
			store := NewMemoryOwnedStore()
			if cfg.IPVSStateFile != "" {
				store = NewFileOwnedStore(cfg.IPVSStateFile)
			}
			b, err := OpenIPVS(opts.NetNS, store)
			if err != nil {
				return nil, err
			}
			m.backend = b
		default:
			m.backend = NewNFTables(cfg.NFTablesTable, opts.NetNS, m.log)
		}
	}
	m.log.Info("lvs: load-balancing backend chosen", "backend", m.choice.Name, "reason", m.choice.Reason)
	m.mu.cfg = cloneConfig(cfg)
	m.mu.specs = specs
	m.mu.tracker = health.NewTracker()
	m.mu.checkers = map[string]checkerEntry{}
	if err := m.syncChecksLocked(m.clk.Now()); err != nil {
		return nil, err
	}
	return m, nil
}

func services(specs []serviceSpec) []model.Service {
	out := make([]model.Service, len(specs))
	for i, s := range specs {
		out[i] = s.svc
	}
	return out
}

// Backend returns the chosen backend's name and the reason it was chosen.
func (m *Manager) Backend() BackendChoice { return m.choice }

// Start reconciles once and starts the health-check and resync loops. The
// loops keep running (and retrying) even when the first reconcile fails;
// its error is returned.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.mu.closed || m.mu.started {
		m.mu.Unlock()
		return fmt.Errorf("lvs: Start: %w", ErrClosed)
	}
	m.mu.started = true
	m.mu.Unlock()
	loopCtx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	_, err := m.Reconcile(ctx)
	m.wg.Add(2)
	go m.healthLoop(loopCtx)
	go m.reconcileLoop(loopCtx)
	return err
}

// Close stops the loops and waits for them and for running checks. The
// kernel tables are left as they are: a restarted replicad picks them up
// without disturbing established connections.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return nil
	}
	m.mu.closed = true
	m.mu.Unlock()
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	return m.backend.Close()
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func targetID(service string, addr netip.AddrPort) string { return service + "/" + addr.String() }

// syncChecksLocked makes the tracker and checkers match the specs.
func (m *Manager) syncChecksLocked(now time.Time) error {
	want := map[string]checkerEntry{}
	for _, s := range m.mu.specs {
		for addr, cs := range s.checks {
			want[targetID(s.name, addr)] = checkerEntry{spec: cs, service: s.name, addr: addr}
		}
	}
	for id := range m.mu.checkers {
		if _, ok := want[id]; !ok {
			m.mu.tracker.Remove(id)
			delete(m.mu.checkers, id)
		}
	}
	for id, e := range want {
		old, ok := m.mu.checkers[id]
		if ok && reflect.DeepEqual(old.spec.cfg, e.spec.cfg) && old.spec.target == e.spec.target {
			continue
		}
		if err := m.mu.tracker.Add(id, e.spec.hcfg, now); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
		e.checker = newChecker(e.spec, e.service, m.netns)
		m.mu.checkers[id] = e
	}
	return nil
}

// desiredLocked is the state the kernel should hold now.
func (m *Manager) desiredLocked() []model.Service {
	out := make([]model.Service, 0, len(m.mu.specs))
	for _, s := range m.mu.specs {
		out = append(out, health.Effective(s.svc, s.policy, func(a netip.AddrPort) (health.State, bool) {
			st, err := m.mu.tracker.Status(targetID(s.name, a))
			if err != nil {
				return 0, false
			}
			return st.State, true
		}))
	}
	return out
}

// Reconcile observes the kernel, plans and applies the difference now.
func (m *Manager) Reconcile(ctx context.Context) (Result, error) {
	m.reconcileMu.Lock()
	defer m.reconcileMu.Unlock()
	m.mu.Lock()
	desired := m.desiredLocked()
	m.mu.Unlock()
	ops, err := m.reconcileLocked(ctx, desired)
	m.mu.Lock()
	m.mu.lastReconcile = m.clk.Now()
	m.mu.lastErr = err
	m.mu.Unlock()
	if err != nil {
		m.log.Error("lvs: reconcile failed; will retry", "backend", m.backend.Name(), "err", err)
		return Result{Ops: ops}, err
	}
	if len(ops) > 0 {
		m.log.Info("lvs: kernel tables updated", "backend", m.backend.Name(), "changes", len(ops))
		for _, op := range ops {
			m.log.Debug("lvs: change", "op", op.String())
		}
	}
	return Result{Ops: ops}, nil
}

func (m *Manager) reconcileLocked(ctx context.Context, desired []model.Service) ([]plan.Op, error) {
	obs, err := m.backend.Observe(ctx)
	if err != nil {
		return nil, err
	}
	ops, err := plan.Plan(desired, obs)
	if err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		return nil, nil
	}
	return ops, m.backend.Apply(ctx, desired, ops)
}

func (m *Manager) reconcileLoop(ctx context.Context) {
	defer m.wg.Done()
	m.mu.Lock()
	resync := m.mu.cfg.ResyncInterval
	m.mu.Unlock()
	t := m.clk.NewTimer(resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-t.C():
		}
		m.Reconcile(ctx)
		m.mu.Lock()
		resync = m.mu.cfg.ResyncInterval
		m.mu.Unlock()
		t.Stop()
		t.Reset(resync)
	}
}

func (m *Manager) healthLoop(ctx context.Context) {
	defer m.wg.Done()
	for {
		m.mu.Lock()
		now := m.clk.Now()
		starts, trans := m.mu.tracker.Tick(now)
		next, ok := m.mu.tracker.NextWake()
		entries := make([]checkerEntry, len(starts))
		for i, s := range starts {
			entries[i] = m.mu.checkers[s.ID]
		}
		m.mu.Unlock()
		m.healthChanged(trans)
		for i, s := range starts {
			m.wg.Add(1)
			go m.runCheck(ctx, s, entries[i])
		}
		wait := time.Hour
		if ok {
			wait = max(next.Sub(now), 0)
		}
		t := m.clk.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-m.healthKick:
		case <-t.C():
		}
		t.Stop()
	}
}

func (m *Manager) runCheck(ctx context.Context, s health.Start, e checkerEntry) {
	defer m.wg.Done()
	cctx, cancel := context.WithTimeout(ctx, e.spec.cfg.Timeout)
	err := e.checker.Check(cctx)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: not a verdict on the server
	}
	m.mu.Lock()
	tr, changed, _ := m.mu.tracker.Result(s.ID, s.Seq, err, m.clk.Now())
	m.mu.Unlock()
	if changed {
		m.healthChanged([]health.Transition{tr})
	}
}

func (m *Manager) healthChanged(trans []health.Transition) {
	if len(trans) == 0 {
		return
	}
	for _, tr := range trans {
		m.mu.Lock()
		e := m.mu.checkers[tr.ID]
		m.mu.Unlock()
		ev := HealthEvent{Service: e.service, RealServer: e.addr, From: tr.From.String(), To: tr.To.String(), Reason: tr.Reason, At: tr.At}
		level := slog.LevelInfo
		if tr.To == health.Down {
			level = slog.LevelWarn
		}
		m.log.Log(context.Background(), level, "lvs: real server health changed", "service", ev.Service, "real_server", ev.RealServer, "from", ev.From, "to", ev.To, "reason", ev.Reason)
		if m.onHealth != nil {
			m.onHealth(ev)
		}
	}
	poke(m.kick)
}
