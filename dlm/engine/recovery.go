package engine

import (
	"maps"
	"slices"

	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/dlm/wire"
)

// recovery is one attempt at recovering the lockspace for a view.
type recovery struct {
	view         []wire.Member
	gen          uint64 // 0 until the coordinator's start is accepted
	startSent    bool
	pendingStart *wire.Msg // a start held until our own gates open
	future       []inbound // recovery messages for a generation not yet started

	dirIn       map[string]*dirAcc
	dirDone     map[NodeID]bool
	mastersSent bool

	mastersIn   []wire.MasterEntry
	mastersDone map[NodeID]bool
	locksSent   bool

	locksIn   []inbound
	locksDone map[NodeID]bool
	newMaster map[string]bool
}

type dirAcc struct {
	owners    []NodeID
	reporters []NodeID
}

func coordinator(view []wire.Member) NodeID {
	if len(view) == 0 {
		return 0
	}
	return view[0].Node
}

// beginRecovery stops locking and starts a recovery attempt for the
// current view, abandoning any attempt in progress.
func (e *Engine) beginRecovery() {
	if e.left {
		return
	}
	var future []inbound
	if e.rec != nil {
		e.table.AbortRebuild()
		// batches for a generation not started yet may belong to a start
		// we will still accept
		future = e.rec.future
	} else if e.running {
		e.logf("stopping locking for recovery of view %v", e.Members())
	}
	e.running = false
	e.rec = &recovery{
		view:        slices.Clone(e.view),
		future:      future,
		dirIn:       map[string]*dirAcc{},
		dirDone:     map[NodeID]bool{},
		mastersDone: map[NodeID]bool{},
		locksDone:   map[NodeID]bool{},
		newMaster:   map[string]bool{},
	}
	// Lookups in flight are abandoned; recovery tells us the masters.
	// Remote operations held for them wait for locking like the rest.
	for _, name := range slices.Sorted(maps.Keys(e.rsbs)) {
		r := e.rsbs[name]
		r.lookupID = 0
		r.retry = false
		e.held = append(e.held, r.heldReqs...)
		r.heldReqs = nil
	}
	// Messages from nodes that are gone are dropped (the kernel's
	// dlm_purge_requestqueue).
	kept := e.held[:0]
	for _, in := range e.held {
		if e.current(in) {
			kept = append(kept, in)
		}
	}
	e.held = kept
	for n := range e.statuses {
		if !e.inView(n) {
			delete(e.statuses, n)
		}
	}
	e.broadcastStatus()
	e.checkStart()
}

func (e *Engine) fenceStates() []wire.FenceState { return fenceStates(e.failed, e.fenced) }

func (e *Engine) statusMsg() wire.Msg {
	bits := uint8(0)
	if e.quorate && len(e.unknown) == 0 {
		bits |= wire.BitQuorate // quorate, and every node accounted for
	}
	if e.rec != nil {
		bits |= wire.BitRecovering
	}
	return wire.Msg{Type: wire.TypeStatus, Gen: e.gen, ID: e.maxGen, Bits: bits, View: slices.Clone(e.view), Fence: e.fenceStates()}
}

// statusChanged re-announces our status after a gate changed, while we
// wait for a start (once started, gates no longer matter, and a status
// from a started member would read as a restart).
func (e *Engine) statusChanged() {
	if e.rec != nil && e.rec.gen == 0 {
		e.broadcastStatus()
	}
}

func (e *Engine) broadcastStatus() {
	m := e.statusMsg()
	for _, v := range e.view {
		if v.Node != e.self {
			e.send(v.Node, m)
		}
	}
}

// handleRecovery processes a recovery message.
func (e *Engine) handleRecovery(in inbound) {
	from, m := in.from, in.m
	if e.left {
		return
	}
	switch m.Type {
	case wire.TypeStatus:
		e.onStatus(from, m)
		return
	case wire.TypeStart:
		e.onStart(from, m)
		return
	}
	r := e.rec
	if r == nil {
		return // a batch for an attempt we already finished or abandoned
	}
	if r.gen == 0 || m.Gen > r.gen {
		if m.Gen > e.gen {
			r.future = append(r.future, in)
		}
		return
	}
	if m.Gen < r.gen || !e.current(in) {
		return // stale, or from an incarnation that is gone
	}
	switch m.Type {
	case wire.TypeDirInfo:
		e.onDirInfo(from, m)
	case wire.TypeMasters:
		e.onMasters(from, m)
	case wire.TypeLocks:
		e.onLocks(from, m)
	}
}

func (e *Engine) onStatus(from NodeID, m wire.Msg) {
	e.statuses[from] = &m
	// Adopt the failures and fence confirmations other members know of.
	changed := e.mergeFence(m.Fence)
	if changed {
		e.recomputeView()
	}
	if e.rec == nil {
		// A member started a new round we have no reason of our own for
		// (it saw a view change we did not); a status it sent before
		// taking part in our last generation is stale (its highest
		// generation is older).
		if m.Has(wire.BitRecovering) && e.inView(from) && !e.left && m.ID >= e.gen {
			e.beginRecovery()
		}
		return
	}
	if changed {
		e.statusChanged()
	}
	if r := e.rec; r.gen != 0 && coordinator(r.view) == e.self && m.Has(wire.BitRecovering) && sameView(m.View, r.view) {
		if m.ID >= r.gen {
			// it took part in this generation and then restarted (its
			// view changed and changed back): start a newer one, which
			// every member takes over this one
			e.beginRecovery()
			return
		}
		// it missed our start (it had another view then): send it again
		e.send(from, wire.Msg{Type: wire.TypeStart, Gen: r.gen, View: slices.Clone(r.view)})
	}
	e.checkStart()
	e.tryPendingStart()
}

func sameView(a, b []wire.Member) bool { return slices.Equal(a, b) }

// checkStart, on the coordinator, starts the next generation once every
// member reports this view, quorum and no unfenced failure.
func (e *Engine) checkStart() {
	r := e.rec
	if r == nil || r.startSent || r.gen != 0 || coordinator(r.view) != e.self {
		return
	}
	if !e.gatesOK() || !e.helloComplete() {
		return
	}
	g := max(e.maxGen, e.gen)
	failed := maps.Clone(e.failed)
	for _, v := range r.view {
		if v.Node == e.self {
			continue
		}
		st := e.statuses[v.Node]
		if st == nil || !st.Has(wire.BitRecovering) || !st.Has(wire.BitQuorate) || !sameView(st.View, r.view) {
			return
		}
		for _, f := range st.Fence {
			failed[f.Node] = max(failed[f.Node], f.Failed)
		}
		g = max(g, st.ID, st.Gen)
	}
	// every failure any member knows of must be fenced
	for n, inc := range failed {
		if inc > e.fenced[n] {
			return
		}
	}
	g++
	r.startSent = true
	start := wire.Msg{Type: wire.TypeStart, Gen: g, View: slices.Clone(r.view)}
	e.logf("coordinating recovery generation %d of view %v", g, e.Members())
	for _, v := range r.view {
		if v.Node != e.self {
			e.send(v.Node, start)
		}
	}
	e.onStart(e.self, start)
}

func (e *Engine) onStart(from NodeID, m wire.Msg) {
	r := e.rec
	if r == nil || from != coordinator(r.view) || !sameView(m.View, r.view) || m.Gen <= e.gen || m.Gen <= r.gen {
		return
	}
	if r.gen != 0 {
		// The coordinator restarted recovery for the same view (the view
		// changed and changed back without this node noticing): abandon
		// this attempt for the newer one.
		e.logf("abandoning recovery generation %d for %d", r.gen, m.Gen)
		e.table.AbortRebuild()
		e.rec = &recovery{
			view: r.view, future: r.future, startSent: r.startSent,
			dirIn: map[string]*dirAcc{}, dirDone: map[NodeID]bool{}, mastersDone: map[NodeID]bool{},
			locksDone: map[NodeID]bool{}, newMaster: map[string]bool{},
		}
		r = e.rec
	}
	if !e.gatesOK() || !e.helloComplete() {
		r.pendingStart = &m
		return
	}
	e.acceptStart(m)
}

func (e *Engine) tryPendingStart() {
	r := e.rec
	if r == nil || r.pendingStart == nil || !e.gatesOK() || !e.helloComplete() {
		return
	}
	m := *r.pendingStart
	r.pendingStart = nil
	e.acceptStart(m)
}

func (e *Engine) acceptStart(m wire.Msg) {
	r := e.rec
	r.gen = m.Gen
	e.maxGen = max(e.maxGen, m.Gen)
	e.sendDirInfo()
	future := r.future
	r.future = nil
	for _, in := range future {
		e.handleRecovery(in)
	}
}

// sendBatches sends one batch message per view member, splitting long
// batches with BitMore; members with nothing get an empty batch so that
// every receiver can count answers.
func (e *Engine) sendBatches(typ wire.Type, per map[NodeID]int, fill func(to NodeID, from, to2 int, m *wire.Msg)) {
	r := e.rec
	for _, v := range r.view {
		n := per[v.Node]
		for start := 0; ; start += e.cfg.MaxBatch {
			end := min(start+e.cfg.MaxBatch, n)
			m := wire.Msg{Type: typ, Gen: r.gen}
			fill(v.Node, start, end, &m)
			if end < n {
				m.Bits |= wire.BitMore
			}
			e.send(v.Node, m)
			if end >= n {
				break
			}
		}
	}
}

// sendDirInfo reports every resource this node masters or holds locks on
// to its directory node over the new view.
func (e *Engine) sendDirInfo() {
	r := e.rec
	per := map[NodeID][]wire.DirEntry{}
	names := map[string]bool{}
	for n := range e.owned {
		names[n] = true
	}
	for n := range e.rsbs {
		names[n] = true
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		d := wire.DirEntry{Name: name, Owner: e.owned[name] != nil}
		if rs := e.rsbs[name]; rs != nil {
			d.Believed = rs.master
		}
		to := dirNode(name, r.view)
		per[to] = append(per[to], d)
	}
	counts := map[NodeID]int{}
	for n, l := range per {
		counts[n] = len(l)
	}
	e.sendBatches(wire.TypeDirInfo, counts, func(to NodeID, a, b int, m *wire.Msg) {
		m.Dir = slices.Clone(per[to][a:b])
	})
}

func (e *Engine) onDirInfo(from NodeID, m wire.Msg) {
	r := e.rec
	if r.dirDone[from] {
		return
	}
	for _, d := range m.Dir {
		acc := r.dirIn[d.Name]
		if acc == nil {
			acc = &dirAcc{}
			r.dirIn[d.Name] = acc
		}
		if d.Owner && !slices.Contains(acc.owners, from) {
			acc.owners = append(acc.owners, from)
		}
		if !slices.Contains(acc.reporters, from) {
			acc.reporters = append(acc.reporters, from)
		}
	}
	if !m.Has(wire.BitMore) {
		r.dirDone[from] = true
	}
	if len(r.dirDone) == len(r.view) && !r.mastersSent {
		e.buildDirectory()
	}
}

// buildDirectory rebuilds this node's part of the directory: a surviving
// master keeps its resources; a resource whose master is gone gets the
// lowest node that reported it. Every reporter gets the answer.
func (e *Engine) buildDirectory() {
	r := e.rec
	r.mastersSent = true
	dir := map[string]NodeID{}
	per := map[NodeID][]wire.MasterEntry{}
	for _, name := range slices.Sorted(maps.Keys(r.dirIn)) {
		acc := r.dirIn[name]
		var master NodeID
		remaster := false
		switch {
		case len(acc.owners) == 1:
			master = acc.owners[0]
		case len(acc.owners) > 1:
			// Should not happen; rebuild from the survivors' copies.
			master = slices.Min(acc.owners)
			remaster = true
			e.logf("resource %q claimed by masters %v; remastering on node %d", name, acc.owners, master)
		default:
			master = slices.Min(acc.reporters)
			remaster = true
		}
		dir[name] = master
		for _, rep := range acc.reporters {
			per[rep] = append(per[rep], wire.MasterEntry{Name: name, Master: master, Remaster: remaster})
		}
	}
	e.dir = dir
	counts := map[NodeID]int{}
	for n, l := range per {
		counts[n] = len(l)
	}
	e.sendBatches(wire.TypeMasters, counts, func(to NodeID, a, b int, m *wire.Msg) {
		m.Masters = slices.Clone(per[to][a:b])
	})
}

func (e *Engine) onMasters(from NodeID, m wire.Msg) {
	r := e.rec
	if r.mastersDone[from] {
		return
	}
	r.mastersIn = append(r.mastersIn, m.Masters...)
	if !m.Has(wire.BitMore) {
		r.mastersDone[from] = true
	}
	if len(r.mastersDone) == len(r.view) && !r.locksSent {
		e.sendLocks()
	}
}

// sendLocks applies the directory's answers: settles operations in flight
// to departed masters and sends this node's locks on remastered resources
// to their new masters.
func (e *Engine) sendLocks() {
	r := e.rec
	r.locksSent = true
	per := map[NodeID][]wire.LockReport{}
	for _, me := range r.mastersIn {
		name := me.Name
		if e.owned[name] != nil && (me.Master != e.self || me.Remaster) {
			e.logf("giving up mastery of %q to node %d", name, me.Master)
			e.table.Drop(name)
			delete(e.owned, name)
		}
		if me.Master == e.self && me.Remaster {
			r.newMaster[name] = true
		}
		rs := e.rsbs[name]
		if rs == nil {
			continue
		}
		old, oldInc := rs.master, rs.mInc
		rs.master = me.Master
		rs.mInc, _ = e.viewInc(me.Master)
		// messages in flight to a master that left, failed or rejoined as a
		// new incarnation are lost with it
		inc, in := e.viewInc(old)
		lost := old != 0 && old != e.self && (!in || inc != oldInc)
		// A remastered resource is rebuilt from what we report now: what we
		// had in flight to its old master is settled here, and the new
		// master refuses it as stale (its generation predates the rebuild).
		// (A live old master that nobody claims either gave the resource up
		// once it held no locks, or never finished taking it.)
		lost = lost || (me.Remaster && old != 0 && old != e.self)
		for _, id := range slices.Sorted(maps.Keys(rs.locks)) {
			lk := e.locks[id]
			if lk == nil {
				continue
			}
			if lost {
				e.settleLost(lk)
				if e.locks[id] == nil {
					continue
				}
			} else if lk.op == opRequest && lk.opSent {
				// a request sent to a node we wrongly took for the master;
				// if that node is gone, so is the request. A request carried
				// by a lookup to a node that is not the master was not run
				// there: a node that ran it holds the lock and masters the
				// resource still.
				// A remaster rebuilds the resource from the reports, which
				// do not include a request that has no status yet.
				if inc, in := e.viewInc(lk.opTo); !in || inc != lk.opToInc || (lk.carried && (me.Master != lk.opTo || me.Remaster)) {
					e.settleLost(lk)
					if e.locks[id] == nil {
						continue
					}
				}
			}
			if me.Remaster {
				if rep, ok := lk.report(); ok {
					per[me.Master] = append(per[me.Master], rep)
				}
			}
		}
		e.dropRsbIfIdle(rs)
	}
	counts := map[NodeID]int{}
	for n, l := range per {
		counts[n] = len(l)
	}
	e.sendBatches(wire.TypeLocks, counts, func(to NodeID, a, b int, m *wire.Msg) {
		m.Locks = slices.Clone(per[to][a:b])
	})
	e.maybeFinish()
}

func (e *Engine) onLocks(from NodeID, m wire.Msg) {
	r := e.rec
	if r.locksDone[from] {
		return
	}
	r.locksIn = append(r.locksIn, e.in(from, m))
	if !m.Has(wire.BitMore) {
		r.locksDone[from] = true
	}
	e.maybeFinish()
}

func (e *Engine) maybeFinish() {
	r := e.rec
	if r == nil || !r.locksSent || len(r.locksDone) != len(r.view) {
		return
	}
	e.finishRecovery()
}

// finishRecovery rebuilds remastered resources from the survivors' copies,
// purges departed nodes' locks from the resources this node kept, enables
// locking, regrants, replays held messages and resends lost operations.
func (e *Engine) finishRecovery() {
	r := e.rec
	for _, in := range r.locksIn {
		inc, _ := e.viewInc(in.from)
		for _, l := range in.m.Locks {
			if !r.newMaster[l.Name] {
				e.logf("node %d sent locks on %q, which this node does not newly master", in.from, l.Name)
				continue
			}
			err := e.table.AddRecovered(l.Name, locktable.RecoveredLock{
				ID: locktable.LockID{Node: in.from, ID: l.LkID}, Inc: inc,
				GrMode: l.GrMode, RqMode: l.RqMode, Status: l.Status, Flags: l.Flags, SB: l.SB,
				LVB: l.LVB, LVBSeq: l.LVBSeq, HighBast: l.HighBast, WantBast: l.WantBast,
			})
			if err != nil {
				e.logf("rebuilding %q from node %d: %v", l.Name, in.from, err)
			}
		}
	}
	viewInc := map[NodeID]uint64{}
	for _, v := range r.view {
		viewInc[v.Node] = v.Inc
	}
	if n := e.table.Purge(func(id locktable.LockID, inc uint64) bool { return viewInc[id.Node] == inc }); n > 0 {
		e.logf("purged %d locks of departed nodes", n)
	}
	e.table.FinishRecovery()
	for name := range r.newMaster {
		e.owned[name] = &owned{since: r.gen}
	}
	for name, o := range e.owned {
		if e.table.Has(name) {
			o.emptySince = 0
		} else if o.emptySince == 0 {
			o.emptySince = max(e.now, 1)
		}
	}
	e.gen = r.gen
	e.running = true
	e.rec = nil
	e.statuses = map[NodeID]*wire.Msg{}
	e.logf("recovery generation %d done; locking enabled", e.gen)

	e.table.GrantRecovered(func(name string, ev []locktable.Event) { e.dispatch(name, ev) })
	held := e.held
	e.held = nil
	for _, in := range held {
		e.handle(in.from, in.m)
	}
	for _, id := range slices.Sorted(maps.Keys(e.locks)) {
		if lk := e.locks[id]; lk != nil {
			e.pump(lk)
		}
	}
}
