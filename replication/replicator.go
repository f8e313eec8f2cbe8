package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/replicad/replicad/internal/clock"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/uuid"
	"github.com/replicad/replicad/replication/wire"
)

// ReplicatorConfig configures one volume's replication.
type ReplicatorConfig struct {
	NodeID   uint32
	Peers    []uint32
	Protocol byte
	// Checksums: resyncs compare block digests first and send only the
	// blocks that differ.
	Checksums         bool
	Policies          uuid.Policies
	AllowTwoPrimaries bool
	// Quorum and OnNoQuorum: see engine/quorum.go.
	Quorum     engine.QuorumPolicy
	OnNoQuorum engine.OnNoQuorum
	// PingInterval is how often an idle link is pinged; a link that stays
	// silent for PingInterval+PingTimeout is dead.
	PingInterval, PingTimeout time.Duration
	// ConnectInterval is the pause between connection attempts.
	ConnectInterval time.Duration
	// Timeout and KoCount: a peer that leaves a write unacknowledged for
	// KoCount*Timeout is disconnected (0 disables).
	Timeout time.Duration
	KoCount int
	// Compression is "none", "s2" or "zstd" for data frames.
	Compression string
	compression wire.Compression
	// ResyncChunk is the largest resync request; ResyncWindow is the most
	// bytes in flight, the dynamic controller keeping acknowledgements
	// within ResyncDelayTarget; ResyncRate caps the rate (bytes/s, 0: no cap).
	ResyncChunk, ResyncWindow, ResyncRate int64
	ResyncDelayTarget                     time.Duration
	// SplitBrainHandler, if set, is run (with REPLICAD_* variables) when a
	// split brain is detected and not resolved automatically.
	SplitBrainHandler string
	// Fencing is the fencing policy; FencePeerHandler the command run to
	// outdate or fence a lost peer (exit codes as DRBD's: 3 peer
	// inconsistent, 4 outdated, 5 unreachable, 6 peer is primary, 7
	// fenced). FenceTimeout bounds it when run before a promotion.
	Fencing          engine.FencePolicy
	FencePeerHandler string
	FenceTimeout     time.Duration
	// NodeNames, LocalName and ControlSocket fill the handlers' environment.
	NodeNames     map[uint32]string
	LocalName     string
	ControlSocket string
	Clock         clock.Clock
	Logger        *slog.Logger
	// ackDelay replaces the link's ackDelay (tests).
	ackDelay time.Duration
}

// DefaultReplicatorConfig returns DRBD-like defaults.
func DefaultReplicatorConfig() ReplicatorConfig {
	return ReplicatorConfig{
		Protocol: 'C', Policies: uuid.DefaultPolicies(),
		PingInterval: 2 * time.Second, PingTimeout: 2 * time.Second, ConnectInterval: time.Second,
		Timeout: 6 * time.Second, KoCount: 7,
		ResyncChunk: 1 << 20, ResyncWindow: 32 << 20, ResyncDelayTarget: 50 * time.Millisecond,
	}
}

// Replicator runs a volume's replication: it is the volume's I/O path
// (WriteAt, Flush, ...) when peers are configured, and it keeps one link
// per peer.
type Replicator struct {
	cfg    ReplicatorConfig
	vol    *Volume
	tr     *Transport
	log    *slog.Logger
	ranges *rangeLock
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the engine and everything below; the engine's output is
	// performed under it where order matters (queueing messages).
	mu      sync.Mutex
	eng     *engine.Engine
	links   map[uint32]*link
	waiters map[uint64]chan error
	// mods hold written writes' activity-log extents until the engine
	// retires them (every peer wrote them).
	mods  map[uint64]*Modification
	subs  map[chan engine.Event]struct{}
	rates map[uint32]*rateMeter
	// thawed is signalled (with r.mu) when frozen I/O may resume.
	thawed *sync.Cond
}

// NewReplicator starts the engine for vol (the volume starts secondary).
func NewReplicator(name string, vol *Volume, tr *Transport, cfg ReplicatorConfig) (*Replicator, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var err error
	if cfg.compression, err = wire.ParseCompression(cfg.Compression); err != nil {
		return nil, err
	}
	eng, err := engine.New(engine.Config{
		NodeID: cfg.NodeID, Volume: name, Peers: cfg.Peers, Protocol: cfg.Protocol, Checksums: cfg.Checksums, Fencing: cfg.Fencing,
		Policies: cfg.Policies, AllowTwoPrimaries: cfg.AllowTwoPrimaries, Quorum: cfg.Quorum, OnNoQuorum: cfg.OnNoQuorum, NewUUID: rand.Uint64,
	}, vol)
	if err != nil {
		return nil, err
	}
	r := &Replicator{cfg: cfg, vol: vol, tr: tr, log: cfg.Logger.With("volume", name), ranges: newRangeLock(),
		eng: eng, links: make(map[uint32]*link), waiters: make(map[uint64]chan error), mods: make(map[uint64]*Modification),
		subs: make(map[chan engine.Event]struct{}), rates: make(map[uint32]*rateMeter)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.thawed = sync.NewCond(&r.mu)
	if cfg.FenceTimeout <= 0 {
		r.cfg.FenceTimeout = 5 * time.Minute
	}
	for _, p := range cfg.Peers {
		l := &link{r: r, peer: p, kick: make(chan struct{}, 1), resyncKick: make(chan struct{}, 1), spare: make(chan []byte, 4), stats: newLinkStats(),
			ctl: newResyncController(cfg.ResyncChunk, cfg.ResyncWindow, cfg.ResyncDelayTarget)}
		l.accepted = tr.register(name, p)
		r.links[p] = l
		r.rates[p] = &rateMeter{}
	}
	return r, nil
}

// Start runs the links.
func (r *Replicator) Start() {
	for _, l := range r.links {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			l.run()
		}()
	}
}

// Close disconnects every peer and waits for the links. The volume is not
// closed.
func (r *Replicator) Close() error {
	r.cancel()
	r.mu.Lock()
	for _, l := range r.links {
		l.killLocked("volume going down", false)
	}
	r.mu.Unlock()
	r.wg.Wait()
	for name := range r.links {
		r.tr.unregister(r.name(), name)
	}
	r.mu.Lock()
	for id, m := range r.mods {
		delete(r.mods, id)
		m.End()
	}
	r.mu.Unlock()
	return nil
}

func (r *Replicator) name() string { return r.vol.Name() }

// exec performs an engine output; r.mu is held. It returns the Applies,
// which the caller (a link's reader) performs in order.
func (r *Replicator) execLocked(o engine.Output) []engine.Apply {
	for _, s := range o.Sends {
		if l := r.links[s.Peer]; l != nil {
			l.queueLocked(s.Msg, s.Lazy)
		}
	}
	for _, c := range o.Completions {
		if ch, ok := r.waiters[c.ID]; ok {
			delete(r.waiters, c.ID)
			ch <- c.Err
		}
	}
	for _, id := range o.Retired {
		if m, ok := r.mods[id]; ok {
			delete(r.mods, id)
			m.End()
		}
	}
	for _, d := range o.Disconnects {
		if l := r.links[d.Peer]; l != nil {
			r.log.Warn("disconnecting peer", "peer", d.Peer, "reason", d.Reason)
			l.killLocked(d.Reason, d.StandAlone)
		}
	}
	for _, p := range o.Resyncs {
		if l := r.links[p]; l != nil {
			l.startResyncLocked()
		}
	}
	for _, ev := range o.Events {
		attrs := []any{"what", ev.What, "from", ev.Old, "to", ev.New}
		if ev.PeerSet {
			attrs = append(attrs, "peer", ev.Peer)
		}
		if ev.Reason != "" {
			attrs = append(attrs, "reason", ev.Reason)
		}
		r.log.Info("state change", attrs...)
		for ch := range r.subs {
			select {
			case ch <- ev:
			default: // a slow subscriber misses events rather than stalling I/O
			}
		}
	}
	for _, h := range o.Handlers {
		r.runHandlerLocked(h)
	}
	if !r.eng.Suspended() {
		r.thawed.Broadcast()
	}
	return o.Applies
}

// handlerEnv is the environment of the external handlers: replicad's names
// and DRBD's, so DRBD handlers and `repctl fence peer` both understand it.
func (r *Replicator) handlerEnv(h engine.Handler, role engine.Role) []string {
	peerName := r.cfg.NodeNames[h.Peer]
	env := append(os.Environ(),
		"REPLICAD_HANDLER="+h.Name, "REPLICAD_RESOURCE="+r.name(), "REPLICAD_VOLUME="+r.name(),
		fmt.Sprintf("REPLICAD_NODE_ID=%d", r.cfg.NodeID), "REPLICAD_LOCAL_NODE="+r.cfg.LocalName,
		fmt.Sprintf("REPLICAD_PEER_NODE_ID=%d", h.Peer), "REPLICAD_PEER_NODE="+peerName,
		"REPLICAD_FENCING="+r.cfg.Fencing.String(), "REPLICAD_PEER_ROLE="+strings.ToLower(role.String()),
		"REPLICAD_DETAIL="+h.Detail,
		"DRBD_RESOURCE="+r.name(), fmt.Sprintf("DRBD_PEER_NODE_ID=%d", h.Peer), fmt.Sprintf("DRBD_NODE_ID_%d=%s", h.Peer, peerName))
	if r.cfg.ControlSocket != "" {
		env = append(env, "REPLICAD_SOCKET="+r.cfg.ControlSocket)
	}
	return env
}

func (r *Replicator) runHandlerLocked(h engine.Handler) {
	r.log.Warn("handler", "name", h.Name, "peer", h.Peer, "detail", h.Detail)
	switch {
	case h.Name == "split-brain" && r.cfg.SplitBrainHandler != "":
		cmd := exec.Command("/bin/sh", "-c", r.cfg.SplitBrainHandler)
		cmd.Env = r.handlerEnv(h, engine.RoleUnknown)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			out, err := cmd.CombinedOutput()
			r.log.Info("split-brain handler finished", "command", r.cfg.SplitBrainHandler, "err", err, "output", string(out))
		}()
	case h.Name == "fence-peer":
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			code := r.fencePeer(h)
			r.mu.Lock()
			r.execLocked(r.eng.FenceResult(h.Peer, code))
			r.mu.Unlock()
		}()
	}
}

// fencePeer runs the fence-peer handler and returns its exit code (1 when
// it could not run or was killed).
func (r *Replicator) fencePeer(h engine.Handler) int {
	if r.cfg.FencePeerHandler == "" {
		r.log.Error("fencing is configured but no fence-peer handler is set", "peer", h.Peer)
		return 1
	}
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.FenceTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", r.cfg.FencePeerHandler)
	cmd.Env = r.handlerEnv(h, engine.RoleUnknown)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.Exited():
		code = ee.ExitCode()
	case err != nil:
		code = 1
	}
	r.log.Info("fence-peer handler finished", "peer", h.Peer, "exit", code, "err", err, "output", strings.TrimSpace(string(out)))
	return code
}

// waiterLocked registers the channel that the completion of id is sent
// on; await receives it.
func (r *Replicator) waiterLocked(id uint64) chan error {
	ch := waiterPool.Get().(chan error)
	r.waiters[id] = ch
	return ch
}

// waiterPool recycles completion channels: one per write otherwise.
var waiterPool = sync.Pool{New: func() any { return make(chan error, 1) }}

// await blocks until a write or flush completes. It does not give up on
// ctx: the caller's buffer may still be queued to a peer until then (a
// stuck peer is cut off by the ping timeout). The channel, received from
// once (execLocked dropped it before sending), is then free again.
func await(ch chan error) error {
	err := <-ch
	waiterPool.Put(ch)
	return err
}

// ErrNotReadable is returned by ReadAt when the local data is Inconsistent
// (mid-resync as a target) or failed.
var ErrNotReadable = errors.New("local data is not readable (Inconsistent or failed)")

// Size is the data size.
func (r *Replicator) Size() int64 { return r.vol.Size() }

// ReadAt reads local data, which must be consistent.
// A primary without quorum reads like it writes: it waits for quorum
// (suspend-io) or fails (io-error), as its data may be stale already.
func (r *Replicator) ReadAt(ctx context.Context, p []byte, off int64) error {
	if err := r.waitThawed(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	d := r.eng.Disk()
	qerr := r.eng.IOError()
	r.mu.Unlock()
	if qerr != nil {
		return qerr
	}
	if d == engine.Inconsistent || d == engine.Failed {
		return fmt.Errorf("%w: disk is %v", ErrNotReadable, d)
	}
	return r.vol.ReadAt(ctx, p, off)
}

// ReadAtNoWait is ReadAt when the data is in the page cache and I/O is
// neither frozen nor failing; otherwise it returns false having done
// nothing, and ReadAt decides (waits, fails or reads).
func (r *Replicator) ReadAtNoWait(p []byte, off int64) (bool, error) {
	r.mu.Lock()
	d := r.eng.Disk()
	plain := !r.eng.Suspended() && r.eng.IOError() == nil
	r.mu.Unlock()
	if !plain || d == engine.Inconsistent || d == engine.Failed {
		return false, nil
	}
	return r.vol.ReadAtNoWait(p, off)
}

// blockRange rounds [off, off+n) out to bitmap blocks, the unit the range
// lock must cover (bits and resync reads are per block).
func (r *Replicator) blockRange(off, n int64) (int64, int64) {
	g := r.vol.Granularity()
	start := off &^ (g - 1)
	end := (off + n + g - 1) &^ (g - 1)
	return start, end - start
}

// WriteAt replicates a write: its extents enter the activity log, it is
// queued to the peers, written locally, and complete per the protocol.
func (r *Replicator) WriteAt(ctx context.Context, p []byte, off int64, fua bool) error {
	return r.startWrite(ctx, p, off, fua)()
}

// StartWriteAt is WriteAt in two parts (nbd.AsyncWriter): it queues the
// write to the peers and writes it locally, and returns a function that
// waits for the protocol's acknowledgements. Call it exactly once: its
// channel is recycled.
func (r *Replicator) StartWriteAt(ctx context.Context, p []byte, off int64) (wait func() error) {
	return r.startWrite(ctx, p, off, false)
}

// startWrite is StartWriteAt with FUA.
func (r *Replicator) startWrite(ctx context.Context, p []byte, off int64, fua bool) (wait func() error) {
	return r.modify(ctx, off, int64(len(p)), func(m *Modification) error { return m.Write(p, fua) },
		func() (uint64, engine.Output, error) { return r.eng.StartWrite(off, p, fua) })
}

// WriteZeroes replicates a zeroing (WRITE_ZEROES or TRIM).
func (r *Replicator) WriteZeroes(ctx context.Context, off, n int64, deallocate, fua bool) error {
	return r.modify(ctx, off, n, func(m *Modification) error { return m.Zero(deallocate, fua) },
		func() (uint64, engine.Output, error) { return r.eng.StartZero(off, n, deallocate, fua) })()
}

// modify is the replicated write path: range lock, activity log, queue to
// the peers (start), local write (local); the function it returns waits
// for the protocol.
func (r *Replicator) modify(ctx context.Context, off, n int64, local func(*Modification) error, start func() (uint64, engine.Output, error)) (wait func() error) {
	lo, ln := r.blockRange(off, n)
	var m *Modification
	var id uint64
	var out engine.Output
	for {
		if err := r.waitThawed(ctx); err != nil {
			return failed(err)
		}
		r.ranges.lock(lo, ln)
		var err error
		m, err = r.vol.BeginModify(ctx, off, n)
		if err != nil || m == nil {
			r.ranges.unlock(lo, ln)
			return failed(err)
		}
		r.mu.Lock()
		id, out, err = start()
		if err == nil {
			break
		}
		r.mu.Unlock()
		m.End()
		r.ranges.unlock(lo, ln)
		if !errors.Is(err, engine.ErrSuspended) {
			return failed(err)
		}
		// I/O was suspended after waitThawed looked: wait again.
	}
	done := r.waiterLocked(id)
	r.mods[id] = m
	r.execLocked(out)
	r.mu.Unlock()
	err := local(m)
	r.ranges.unlock(lo, ln)
	r.mu.Lock()
	r.execLocked(r.eng.LocalWriteDone(id, err))
	r.mu.Unlock()
	return func() error { return await(done) }
}

// failed is a wait function for a write that did not start.
func failed(err error) func() error { return func() error { return err } }

// waitThawed blocks while I/O is frozen for fencing (resource-and-stonith)
// or for quorum (on-no-quorum suspend-io).
func (r *Replicator) waitThawed(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.eng.Suspended() {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.thawed.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	for r.eng.Suspended() {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.thawed.Wait()
	}
	return nil
}

// ResumeIO unfreezes I/O whatever the fencing outcome (operator override).
func (r *Replicator) ResumeIO() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.execLocked(r.eng.ResumeIO())
}

// Flush makes every completed write durable locally and on protocol-C peers.
func (r *Replicator) Flush(ctx context.Context) error {
	if err := r.waitThawed(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	id, out, err := r.eng.StartFlush()
	for errors.Is(err, engine.ErrSuspended) {
		r.mu.Unlock()
		if err := r.waitThawed(ctx); err != nil {
			return err
		}
		r.mu.Lock()
		id, out, err = r.eng.StartFlush()
	}
	if err != nil {
		r.mu.Unlock()
		return err
	}
	done := r.waiterLocked(id)
	r.execLocked(out)
	r.mu.Unlock()
	err = r.vol.Flush(ctx)
	r.mu.Lock()
	r.execLocked(r.eng.LocalFlushDone(id, err))
	r.mu.Unlock()
	return await(done)
}

// Role is this node's role.
func (r *Replicator) Role() engine.Role {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.Role()
}

// Promote makes this node primary (see engine.Promote). With fencing
// configured, peers that are not connected and not known to be outdated
// are fenced first through the fence-peer handler; promotion fails if that
// does not settle them.
func (r *Replicator) Promote(force bool) error {
	err := r.promote(force)
	if err == nil {
		// Peers the promotion handshakes with again count for quorum
		// until they had time to reconnect.
		r.cfg.Clock.AfterFunc(r.cfg.ConnectInterval+r.cfg.PingTimeout, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.execLocked(r.eng.EndRehandshakeGrace())
		})
	}
	return err
}

func (r *Replicator) promote(force bool) error {
	r.mu.Lock()
	out, err := r.eng.Promote(force)
	r.execLocked(out)
	r.mu.Unlock()
	var nf *engine.NeedsFencingError
	if !errors.As(err, &nf) {
		return err
	}
	for _, p := range nf.Peers {
		code := r.fencePeer(engine.Handler{Name: "fence-peer", Peer: p, Detail: "promotion while the peer is unreachable"})
		r.mu.Lock()
		r.execLocked(r.eng.FenceResult(p, code))
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err = r.eng.Promote(force)
	r.execLocked(out)
	if errors.Is(err, engine.ErrNeedsFencing) {
		return fmt.Errorf("%w (the fence-peer handler did not report them outdated or fenced)", err)
	}
	return err
}

// Demote makes this node secondary; the caller has stopped writers. It
// waits (up to the peer timeout) until every peer has written every write:
// under protocol A or B a write completes before that, and a new primary's
// writes must not overtake it on a third node.
func (r *Replicator) Demote() error {
	deadline := r.cfg.Clock.Now().Add(r.cfg.Timeout)
	for {
		r.mu.Lock()
		out, err := r.eng.Demote()
		r.execLocked(out)
		r.mu.Unlock()
		if !errors.Is(err, engine.ErrWritesInFlight) || r.cfg.Clock.Now().After(deadline) {
			return err
		}
		if !clock.Sleep(r.cfg.Clock, 5*time.Millisecond, r.ctx.Done()) {
			return err
		}
	}
}

// Connect lets a StandAlone peer connect again; discardMyData resolves a
// pending split brain by discarding this node's changes.
func (r *Replicator) Connect(peer uint32, discardMyData bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := r.eng.Configure(peer, false, discardMyData)
	r.execLocked(out)
	if l := r.links[peer]; l != nil {
		l.wake()
	}
	return err
}

// StartVerify starts an online verify with an Established peer.
func (r *Replicator) StartVerify(peer uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := r.eng.StartVerify(peer)
	r.execLocked(out)
	return err
}

// Disconnect closes a peer's connection and keeps it StandAlone.
func (r *Replicator) Disconnect(peer uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := r.eng.Configure(peer, true, false)
	r.execLocked(out)
	if l := r.links[peer]; l != nil {
		l.wake() // an acceptor waiting for the peer refuses it instead
	}
	return err
}

// ReplicationStatus is the engine's status plus resync rates.
type ReplicationStatus struct {
	engine.Status
	// ResyncRate is bytes/s per peer over the last few seconds.
	ResyncRate map[uint32]float64
	// LinkError is, per peer, why the last connection attempt failed.
	LinkError map[uint32]string
	// Traffic is, per peer, the bytes sent and received by message kind.
	Traffic map[uint32]Traffic
}

// Traffic is a link's byte counts by message kind ("write", "resync",
// "other").
type Traffic struct {
	Sent, Received map[string]int64
}

// Status reports the replication state.
func (r *Replicator) Status() ReplicationStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := ReplicationStatus{Status: r.eng.Status(), ResyncRate: map[uint32]float64{}, LinkError: map[uint32]string{}}
	st.Traffic = map[uint32]Traffic{}
	for p, l := range r.links {
		if l.lastDialErr != "" {
			st.LinkError[p] = l.lastDialErr
		} else if why := r.tr.refusedFrom(p); why != "" {
			st.LinkError[p] = why
		}
		t := Traffic{Sent: map[string]int64{}, Received: map[string]int64{}}
		for k, c := range l.stats.SentBytes {
			t.Sent[k] = c.Load()
		}
		for k, c := range l.stats.ReceivedBytes {
			t.Received[k] = c.Load()
		}
		st.Traffic[p] = t
	}
	now := r.cfg.Clock.Now()
	for i, p := range st.Peers {
		m := r.rates[p.Node]
		st.ResyncRate[p.Node] = m.sample(now, p.ResyncDone)
		st.Peers[i] = p
	}
	return st
}

// Subscribe returns a channel of state changes; cancel with Unsubscribe.
func (r *Replicator) Subscribe() chan engine.Event {
	ch := make(chan engine.Event, 256)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	return ch
}

// Unsubscribe stops delivering to ch.
func (r *Replicator) Unsubscribe(ch chan engine.Event) {
	r.mu.Lock()
	delete(r.subs, ch)
	r.mu.Unlock()
}

// rateMeter turns resync progress samples into a rate.
type rateMeter struct {
	at   time.Time
	done int64
	rate float64
}

func (m *rateMeter) sample(now time.Time, done int64) float64 {
	if m.at.IsZero() || done < m.done {
		m.at, m.done, m.rate = now, done, 0
		return 0
	}
	if dt := now.Sub(m.at).Seconds(); dt >= 1 {
		m.rate = float64(done-m.done) / dt
		m.at, m.done = now, done
	}
	return m.rate
}
