package fence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/replicad/replicad/fence/agentproto"
	"github.com/replicad/replicad/fence/plan"
	"github.com/replicad/replicad/fence/queue"
	"github.com/replicad/replicad/fence/topology"
	"github.com/replicad/replicad/internal/clock"
)

// Options are the Fencer's collaborators.
type Options struct {
	// Clock times delays, status polling and agent timeouts. Default:
	// clock.Real().
	Clock clock.Clock
	// Rand draws the random part of device delays. Default: seeded from
	// the runtime's random source.
	Rand *rand.Rand
	// Logger receives one line per operation event. Default: discard.
	Logger *slog.Logger
}

// Request asks for one fence operation.
type Request struct {
	Target string
	Action Action
	// Origin names who asks: "node-a/replication r0", "node-a/crm",
	// "repctl root@node-b".
	Origin string
	// Reason is shown in the history: "peer lost, fence-peer",
	// "node missed 5 heartbeats".
	Reason string
	// TargetHoldsPrimary delays the operation by Config.PriorityDelay:
	// in a two-node fence race the node holding the primary shoots first.
	TargetHoldsPrimary bool
}

// Result is an operation as this request saw it.
type Result struct {
	Operation
	// Merged is set when the request joined an operation already asked
	// for by someone else.
	Merged bool `json:"merged,omitempty"`
}

// Fencer runs fence operations: one at a time per target, merging
// concurrent requests, levels in order, off verified, every operation in
// the history.
type Fencer struct {
	cfg     Config
	clock   clock.Clock
	log     *slog.Logger
	devices map[string]*device
	order   []string
	topo    *topology.Table
	history *historyStore

	base   context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		closed  bool
		rand    *rand.Rand
		queue   *queue.Queue
		nextReq uint64
		ops     map[uint64]*liveOp
	}
}

// liveOp is an operation created by this process and not yet finished.
type liveOp struct {
	req        Request // the request that created it
	requesters []Requester
	waiters    []chan opDone
	started    time.Time
	cancel     context.CancelCauseFunc
	ctx        context.Context
}

type opDone struct {
	op  Operation
	err error
}

type device struct {
	index int
	cfg   DeviceConfig
	agent Agent
	meta  *agentproto.Metadata
	path  string
}

// errConfirmed is the cause a running operation is stopped with by Confirm.
var errConfirmed = errors.New("node confirmed down by an operator")

// New validates cfg, builds every device's agent, checks each exec agent's
// metadata and parameters, and opens the history. Problems are reported all
// at once, wrapped in ErrInvalidConfig.
func New(ctx context.Context, cfg Config, opts Options) (*Fencer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.Rand == nil {
		opts.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Fencer{cfg: cfg, clock: opts.Clock, log: opts.Logger, devices: map[string]*device{}}
	var errs []error
	for i, dc := range cfg.Devices {
		d, problems := f.buildDevice(ctx, i, dc)
		errs = append(errs, problems...)
		if d != nil {
			f.devices[dc.Name] = d
			f.order = append(f.order, dc.Name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		f.closeAgents()
		return nil, err
	}
	f.topo = buildTopology(cfg)
	h, rep, err := openHistory(cfg.HistoryPath)
	if err != nil {
		f.closeAgents()
		return nil, err
	}
	if len(rep.Damaged) > 0 || rep.Undecodable > 0 {
		f.log.Warn("fence history had damage", "path", cfg.HistoryPath, "records", rep.Records,
			"damaged_ranges", len(rep.Damaged), "truncated_bytes", rep.Truncated, "undecodable", rep.Undecodable)
	}
	f.history = h
	f.base, f.cancel = context.WithCancelCause(context.Background())
	f.mu.rand = opts.Rand
	f.mu.queue = queue.New(h.nextID())
	f.mu.ops = map[uint64]*liveOp{}
	return f, nil
}

func (f *Fencer) buildDevice(ctx context.Context, i int, dc DeviceConfig) (*device, []error) {
	field := fmt.Sprintf("fence.devices[%d] (%s)", i, dc.Name)
	bad := func(sub, format string, args ...any) error {
		return fmt.Errorf("%w: %s%s: "+format, append([]any{ErrInvalidConfig, field, sub}, args...)...)
	}
	d := &device{index: i, cfg: dc}
	switch dc.Agent {
	case AgentRedfish:
		a, err := NewRedfishAgent(dc.Redfish, dc.Hosts)
		if err != nil {
			return nil, []error{bad(".redfish", "%v", err)}
		}
		d.agent, d.meta = a, RedfishMetadata()
		return d, nil
	case AgentExec:
	default:
		return nil, []error{bad(".agent", "unknown agent %q", dc.Agent)}
	}
	path, err := ResolveCommand(dc.Command, f.cfg.AgentPath)
	if err != nil {
		return nil, []error{bad(".command", "%v", err)}
	}
	a := NewExecAgent(path, dc.Params, dc.HostArgument)
	mctx, cancel := withClockTimeout(ctx, f.clock, f.cfg.MetadataTimeout)
	meta, err := a.Metadata(mctx)
	cancel()
	if err != nil {
		return nil, []error{bad(".command", "%s: metadata action: %w", path, err)}
	}
	var errs []error
	for _, act := range []string{agentproto.ActionOff, agentproto.ActionStatus} {
		if !meta.Supports(act) {
			errs = append(errs, bad(".command", "agent %s lists no %q action; replicad needs off and status (off is verified with status)", meta.Name, act))
		}
	}
	for _, p := range meta.CheckParams(dc.Params) {
		errs = append(errs, bad(".params.", "%v", p))
	}
	if ha := dc.HostArgument; ha != "none" {
		if _, ok := meta.Param(ha); !ok {
			errs = append(errs, bad(".host-argument", "agent %s has no parameter %q to carry the port; set host-argument to one of its parameters, or none", meta.Name, ha))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if !meta.Supports(agentproto.ActionOn) {
		f.log.Warn("fence agent has no on action: reboot will only power off and unfencing fails", "device", dc.Name, "agent", meta.Name)
	}
	d.agent, d.meta, d.path = a, meta, path
	return d, nil
}

// withClockTimeout is context.WithTimeout on an injected clock. The cause
// of a timeout wraps ErrTimeout.
func withClockTimeout(parent context.Context, c clock.Clock, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	t := c.AfterFunc(d, func() { cancel(fmt.Errorf("%w: no answer within %v", ErrTimeout, d)) })
	return ctx, func() {
		t.Stop()
		cancel(context.Canceled)
	}
}

func (f *Fencer) closeAgents() {
	for _, d := range f.devices {
		if c, ok := d.agent.(io.Closer); ok {
			c.Close()
		}
	}
}

func checkRequest(r Request) error {
	var errs []error
	if err := checkNodeName(r.Target); err != nil {
		errs = append(errs, fmt.Errorf("%w: target: %v", ErrBadRequest, err))
	}
	if !r.Action.Valid() {
		errs = append(errs, fmt.Errorf("%w: action %q; want off, on or reboot", ErrBadRequest, r.Action))
	}
	if r.Origin == "" {
		errs = append(errs, fmt.Errorf("%w: origin is empty; say who asks", ErrBadRequest))
	}
	if r.Reason == "" {
		errs = append(errs, fmt.Errorf("%w: reason is empty; say why the node must be fenced", ErrBadRequest))
	}
	return errors.Join(errs...)
}

// Fence runs (or joins) an operation and waits for its result. The error is
// nil when the node was fenced (or confirmed down by an operator). On
// failure it wraps ErrFenceFailed and the agents' errors (ErrTimeout,
// ErrLoginDenied, ErrAgentFailed, plan.ErrNotOff). If ctx ends first, Fence
// returns ErrStillRunning and the operation continues; its end is recorded
// in the history.
func (f *Fencer) Fence(ctx context.Context, req Request) (Result, error) {
	if err := checkRequest(req); err != nil {
		return Result{}, err
	}
	if len(f.topo.Levels(req.Target)) == 0 {
		return Result{}, fmt.Errorf("%w: %q (configured targets: %v)", ErrUnknownTarget, req.Target, f.topo.Targets())
	}
	now := f.clock.Now()
	who := Requester{Origin: req.Origin, Reason: req.Reason, At: now}
	done := make(chan opDone, 1)

	f.mu.Lock()
	if f.mu.closed {
		f.mu.Unlock()
		return Result{}, ErrClosed
	}
	f.mu.nextReq++
	op, decision := f.mu.queue.Submit(req.Target, string(req.Action), f.mu.nextReq)
	live := f.mu.ops[op.ID]
	if live == nil {
		live = &liveOp{req: req, started: now}
		f.mu.ops[op.ID] = live
	}
	live.requesters = append(live.requesters, who)
	live.waiters = append(live.waiters, done)
	if decision == queue.Started {
		f.prepareLocked(live)
	}
	f.mu.Unlock()

	ev := Event{Kind: EventStart, Op: op.ID, Time: now, Target: req.Target, Action: req.Action, Requester: &who}
	if decision == queue.Merged {
		ev = Event{Kind: EventJoin, Op: op.ID, Time: now, Requester: &who}
	}
	if err := f.history.append(ev); err != nil {
		f.log.Error("fence history append failed", "op", op.ID, "err", err)
	}
	f.log.Info("fence request", "op", op.ID, "target", req.Target, "action", req.Action, "origin", req.Origin, "reason", req.Reason, "decision", decision.String())
	if decision == queue.Started {
		go f.run(op.ID, live)
	}

	select {
	case d := <-done:
		return Result{Operation: d.op, Merged: decision == queue.Merged}, d.err
	case <-ctx.Done():
		return Result{Operation: Operation{ID: op.ID, Target: req.Target, Action: req.Action, State: StatePending}, Merged: decision == queue.Merged},
			fmt.Errorf("%w: op %d (%s %s): %w", ErrStillRunning, op.ID, req.Action, req.Target, ctx.Err())
	}
}

// prepareLocked gives a starting operation its context and registers its
// goroutine, so Close waits for it and Confirm can stop it.
func (f *Fencer) prepareLocked(live *liveOp) {
	live.ctx, live.cancel = context.WithCancelCause(f.base)
	f.wg.Add(1)
}

// spec builds the plan for live's request, drawing the random delays.
func (f *Fencer) spec(live *liveOp) plan.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return specFor(f.cfg.PriorityDelay, f.deviceConfigs(), f.topo.Levels(live.req.Target), live.req, f.mu.rand.Uint64)
}

func (f *Fencer) deviceConfigs() map[string]DeviceConfig {
	m := make(map[string]DeviceConfig, len(f.devices))
	for n, d := range f.devices {
		m[n] = d.cfg
	}
	return m
}

func buildTopology(c Config) *topology.Table {
	return topology.New(c.topologyDevices(), c.topologyRules())
}

// specFor turns a request and the target's levels into a plan; draw
// supplies the random part of each device delay.
func specFor(priorityDelay time.Duration, devs map[string]DeviceConfig, levels []topology.Level, req Request, draw func() uint64) plan.Spec {
	s := plan.Spec{Target: req.Target, Action: req.Action}
	if req.TargetHoldsPrimary {
		s.PriorityDelay = priorityDelay
	}
	for _, level := range levels {
		var l []plan.Device
		for _, st := range level {
			dc := devs[st.Device]
			l = append(l, plan.Device{
				Name: dc.Name, Port: st.Port,
				Delay:   plan.RandomDelay(dc.DelayBase, dc.DelayMax, draw()),
				Timeout: dc.Timeout, Retries: dc.Retries, RetryInterval: dc.RetryInterval,
				VerifyTimeout: dc.VerifyTimeout, VerifyInterval: dc.VerifyInterval,
			})
		}
		s.Levels = append(s.Levels, l)
	}
	return s
}

// run carries out one operation, records its end and hands the target to
// the next queued operation.
func (f *Fencer) run(id uint64, live *liveOp) {
	defer f.wg.Done()
	spec := f.spec(live)
	out := plan.Run(&agentEnv{f: f, ctx: live.ctx}, spec)
	state, errText := StateSuccess, ""
	var err error
	switch {
	case out.OK:
	case out.Aborted && errors.Is(context.Cause(live.ctx), errConfirmed):
		state, errText = StateConfirmed, context.Cause(live.ctx).Error()
	default:
		state = StateFailed
		cause := out.Err
		if out.Aborted {
			cause = context.Cause(live.ctx)
		}
		errText = cause.Error()
		err = fmt.Errorf("fence %s %s (op %d): %w", spec.Action, spec.Target, id, fmt.Errorf("%w: %w", ErrFenceFailed, cause))
	}
	now := f.clock.Now()
	lvl := slog.LevelInfo
	if state == StateFailed {
		lvl = slog.LevelError
	}
	f.log.Log(context.Background(), lvl, "fence operation finished", "op", id, "target", spec.Target, "action", spec.Action, "state", state, "level", out.Level, "error", errText)
	f.finish(id, live, Operation{
		ID: id, Target: spec.Target, Action: spec.Action, State: state, Started: live.started, Completed: now,
		Level: out.Level, Error: errText, Warnings: out.Warnings, Steps: out.Trace,
	}, err)
}

// finish records an operation's end, answers its waiters and starts the
// next operation for its target; after Close, queued operations fail
// instead of starting. The operation leaves the queue first, under the
// lock, so that no request can merge into an operation that has already
// acted.
func (f *Fencer) finish(id uint64, live *liveOp, op Operation, err error) {
	f.mu.Lock()
	live.cancel(context.Canceled)
	delete(f.mu.ops, id)
	op.Requesters = live.requesters
	op.Devices = devicesOf(op.Steps)
	answer := []struct {
		live *liveOp
		d    opDone
	}{{live, opDone{op, err}}}
	var start *liveOp
	var startID uint64
	next, ok := f.mu.queue.Finish(id)
	for ok {
		nl := f.mu.ops[next.ID]
		if !f.mu.closed {
			f.prepareLocked(nl)
			start, startID = nl, next.ID
			break
		}
		delete(f.mu.ops, next.ID)
		failed := Operation{ID: next.ID, Target: next.Target, Action: Action(next.Action), State: StateFailed,
			Requesters: nl.requesters, Started: nl.started, Completed: f.clock.Now(), Error: ErrClosed.Error()}
		answer = append(answer, struct {
			live *liveOp
			d    opDone
		}{nl, opDone{failed, fmt.Errorf("fence %s %s (op %d): %w: %w", next.Action, next.Target, next.ID, ErrFenceFailed, ErrClosed)}})
		next, ok = f.mu.queue.Finish(next.ID)
	}
	f.mu.Unlock()
	for _, a := range answer {
		o := a.d.op
		ev := Event{Kind: EventFinish, Op: o.ID, Time: o.Completed, State: o.State, Level: o.Level, Error: o.Error, Warnings: o.Warnings, Steps: o.Steps}
		if herr := f.history.append(ev); herr != nil {
			f.log.Error("fence history append failed", "op", o.ID, "err", herr)
		}
	}
	for _, a := range answer {
		for _, w := range a.live.waiters {
			w <- a.d
		}
	}
	if start != nil {
		go f.run(startID, start)
	}
}

func devicesOf(steps []plan.Step) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range steps {
		if s.Device != "" && !seen[s.Device] {
			seen[s.Device] = true
			out = append(out, s.Device)
		}
	}
	return out
}

// Confirm records that an operator verified node down by hand (the node is
// powered off or its power cut). Running and queued off and reboot
// operations for node end as confirmed, and their requesters get success.
// Use it only when fencing cannot succeed and the node is certainly down.
func (f *Fencer) Confirm(ctx context.Context, node, origin, reason string) (Result, error) {
	if err := checkRequest(Request{Target: node, Action: ActionOff, Origin: origin, Reason: reason}); err != nil {
		return Result{}, err
	}
	now := f.clock.Now()
	who := Requester{Origin: origin, Reason: reason, At: now}
	f.mu.Lock()
	if f.mu.closed {
		f.mu.Unlock()
		return Result{}, ErrClosed
	}
	id := f.mu.queue.Take()
	running, removed := f.mu.queue.Settle(node, string(ActionOff), string(ActionReboot))
	cause := fmt.Errorf("%w (op %d by %s: %s)", errConfirmed, id, origin, reason)
	if running != nil {
		if l := f.mu.ops[running.ID]; l != nil && l.cancel != nil {
			l.cancel(cause)
		}
	}
	var settled []*liveOp
	var settledOps []Operation
	for _, r := range removed {
		l := f.mu.ops[r.ID]
		delete(f.mu.ops, r.ID)
		settled = append(settled, l)
		settledOps = append(settledOps, Operation{ID: r.ID, Target: node, Action: Action(r.Action), State: StateConfirmed,
			Requesters: l.requesters, Started: l.started, Completed: now, Error: cause.Error()})
	}
	f.mu.Unlock()

	var herr error
	if err := f.history.append(Event{Kind: EventConfirm, Op: id, Time: now, Target: node, Action: ActionOff, Requester: &who, State: StateConfirmed}); err != nil {
		herr = err
	}
	for _, op := range settledOps {
		if err := f.history.append(Event{Kind: EventFinish, Op: op.ID, Time: now, State: StateConfirmed, Error: op.Error}); err != nil && herr == nil {
			herr = err
		}
	}
	for i, l := range settled {
		for _, w := range l.waiters {
			w <- opDone{settledOps[i], nil}
		}
	}
	f.log.Warn("fence confirmed by operator", "op", id, "target", node, "origin", origin, "reason", reason)
	res := Result{Operation: Operation{ID: id, Target: node, Action: ActionOff, State: StateConfirmed,
		Requesters: []Requester{who}, Started: now, Completed: now}}
	if herr != nil {
		return res, herr
	}
	return res, nil
}

// History returns recorded operations, newest first.
func (f *Fencer) History(q HistoryQuery) []Operation { return f.history.query(q) }

// LastFenced returns the newest operation that took node down: a
// successful off or reboot, or a confirmation. Recovery that must follow a
// fence compares its Completed time with the moment the node was lost.
func (f *Fencer) LastFenced(node string) (Operation, bool) { return f.history.lastFenced(node) }

// Targets lists the nodes some device can fence.
func (f *Fencer) Targets() []string { return f.topo.Targets() }

// Close stops running operations (they end as failed), fails queued ones,
// waits for all of them and closes the history.
func (f *Fencer) Close() error {
	f.mu.Lock()
	if f.mu.closed {
		f.mu.Unlock()
		return nil
	}
	f.mu.closed = true
	f.mu.Unlock()
	f.cancel(ErrClosed)
	f.wg.Wait()
	f.closeAgents()
	return f.history.close()
}

// Devices describes the configured devices, in configuration order.
func (f *Fencer) Devices() []DeviceInfo {
	out := make([]DeviceInfo, 0, len(f.order))
	for _, name := range f.order {
		out = append(out, f.devices[name].info())
	}
	return out
}

// DeviceInfo is a device as `repctl fence list` shows it. Secret
// parameters are redacted.
type DeviceInfo struct {
	Name    string `json:"name"`
	Agent   string `json:"agent"`
	Command string `json:"command,omitempty"`
	// AgentName is the name in the agent's metadata (fence_ipmilan).
	AgentName      string            `json:"agent_name"`
	Params         map[string]string `json:"params,omitempty"`
	Address        string            `json:"address,omitempty"`
	Targets        []TargetPort      `json:"targets"`
	Actions        []string          `json:"actions"`
	Timeout        Duration          `json:"timeout"`
	Retries        int               `json:"retries"`
	DelayBase      Duration          `json:"delay_base"`
	DelayMax       Duration          `json:"delay_max"`
	VerifyTimeout  Duration          `json:"verify_timeout"`
	VerifyInterval Duration          `json:"verify_interval"`
}

// TargetPort is a node a device fences and the port it uses.
type TargetPort struct {
	Target string `json:"target"`
	Port   string `json:"port"`
}

func (d *device) info() DeviceInfo {
	i := DeviceInfo{Name: d.cfg.Name, Agent: d.cfg.Agent, Command: d.path, AgentName: d.meta.Name,
		Timeout: Duration(d.cfg.Timeout), Retries: d.cfg.Retries, DelayBase: Duration(d.cfg.DelayBase), DelayMax: Duration(d.cfg.DelayMax),
		VerifyTimeout: Duration(d.cfg.VerifyTimeout), VerifyInterval: Duration(d.cfg.VerifyInterval)}
	if d.cfg.Agent == AgentRedfish {
		i.Address = d.cfg.Redfish.Address
	}
	if len(d.cfg.Params) > 0 {
		i.Params = map[string]string{}
		for k, v := range d.cfg.Params {
			if isSecret(k) {
				v = "(redacted)"
			}
			i.Params[k] = v
		}
	}
	td := topology.Device{Name: d.cfg.Name, Hosts: d.cfg.Hosts, Ports: d.cfg.hostMap()}
	for _, t := range td.Targets() {
		p, _ := td.Port(t)
		i.Targets = append(i.Targets, TargetPort{Target: t, Port: p})
	}
	for _, a := range d.meta.Actions {
		i.Actions = append(i.Actions, a.Name)
	}
	sort.Strings(i.Actions)
	return i
}

func (f *Fencer) device(name string) (*device, error) {
	d, ok := f.devices[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q (configured: %v)", ErrUnknownDevice, name, f.order)
	}
	return d, nil
}

// Metadata returns a device agent's metadata (read at New for exec agents).
func (f *Fencer) Metadata(name string) (*agentproto.Metadata, error) {
	d, err := f.device(name)
	if err != nil {
		return nil, err
	}
	return d.meta, nil
}
