package engine

import (
	"maps"
	"slices"

	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/dlm/wire"
)

// handle routes one delivered message.
func (e *Engine) handle(from NodeID, m wire.Msg) {
	switch {
	case m.Type == wire.TypeHello:
		// hellos travel unsequenced; one inside a session is ignored
	case m.Type == wire.TypeLeave:
		if p := e.peers[from]; p != nil && from != e.self {
			p.joined, p.gone = false, true
			e.recomputeView()
		}
	case m.Type.Recovery():
		e.handleRecovery(e.in(from, m))
	default:
		if e.left || (from != e.self && !e.inView(from)) {
			return
		}
		if !e.running || m.Gen > e.gen {
			e.held = append(e.held, e.in(from, m))
			return
		}
		if (m.Type == wire.TypeLookup || m.Type == wire.TypeRemove) && m.Gen < e.gen {
			// directory traffic from before the directory was rebuilt; a
			// carried request is answered as not run, so its sender sends it
			// again
			if m.Has(wire.BitCarried) {
				e.send(from, wire.Msg{Type: wire.TypeLookupReply, Gen: e.gen, ID: m.ID, LkID: m.LkID, Name: m.Name})
			}
			return
		}
		e.handleNormal(from, m)
	}
}

func (e *Engine) handleNormal(from NodeID, m wire.Msg) {
	switch m.Type {
	case wire.TypeLookup:
		e.onLookup(from, m)
	case wire.TypeLookupReply:
		e.onLookupReply(from, m)
	case wire.TypeRemove:
		if e.dir[m.Name] == from {
			delete(e.dir, m.Name)
		}
	case wire.TypeRequest, wire.TypeConvert, wire.TypeUnlock, wire.TypeCancel:
		e.onMasterOp(from, m)
	case wire.TypeRequestReply:
		e.onRequestReply(from, m)
	case wire.TypeConvertReply:
		e.onConvertReply(from, m)
	case wire.TypeUnlockReply:
		e.onUnlockReply(from, m)
	case wire.TypeCancelReply:
		e.onCancelReply(from, m)
	case wire.TypeGrant:
		e.onGrant(from, m)
	case wire.TypeBast:
		e.onBast(from, m)
	}
}

func (e *Engine) onLookup(from NodeID, m wire.Msg) {
	reply := wire.Msg{Type: wire.TypeLookupReply, Gen: e.gen, ID: m.ID, LkID: m.LkID, Name: m.Name}
	if dirNode(m.Name, e.view) == e.self && len(m.Name) > 0 {
		reply.Node = e.dirAssign(m.Name, from)
	}
	if m.Has(wire.BitCarried) && reply.Node == e.self && e.owned[m.Name] != nil {
		// we master it: run the carried request as if sent to the master
		reply.Bits = wire.BitCarried
		e.send(from, reply)
		m.Type = wire.TypeRequest
		m.Bits &^= wire.BitCarried
		e.onMasterOp(from, m)
		return
	}
	e.send(from, reply)
}

// dirAssign returns a resource's master from the directory, making the
// requester the master if there is none: the first user masters it.
func (e *Engine) dirAssign(name string, requester NodeID) NodeID {
	if m, ok := e.dir[name]; ok && e.inView(m) {
		return m
	}
	e.dir[name] = requester
	return requester
}

func (e *Engine) own(name string) {
	if e.owned[name] == nil {
		e.owned[name] = &owned{emptySince: max(e.now, 1), since: e.gen}
	}
}

// touch records whether a mastered resource still has locks, for tossIdle.
func (e *Engine) touch(name string) {
	o := e.owned[name]
	if o == nil {
		return
	}
	if e.table.Has(name) {
		o.emptySince = 0
	} else if o.emptySince == 0 {
		o.emptySince = max(e.now, 1)
	}
}

// tossIdle stops mastering resources that have had no locks for TossTicks
// and tells their directory node (the kernel's toss list and remove).
func (e *Engine) tossIdle() {
	for _, name := range slices.Sorted(maps.Keys(e.owned)) {
		o := e.owned[name]
		if o.emptySince == 0 || e.now-o.emptySince < e.cfg.TossTicks || e.table.Has(name) || e.rsbs[name] != nil {
			continue
		}
		delete(e.owned, name)
		if d := dirNode(name, e.view); d == e.self {
			if e.dir[name] == e.self {
				delete(e.dir, name)
			}
		} else {
			e.send(d, wire.Msg{Type: wire.TypeRemove, Gen: e.gen, Name: name})
		}
	}
}

func replyType(t wire.Type) wire.Type { return t + 1 }

// onMasterOp runs a remote node's operation on a resource this node
// masters and answers it.
func (e *Engine) onMasterOp(from NodeID, m wire.Msg) {
	if o := e.owned[m.Name]; o != nil && m.Gen < o.since {
		// sent before a recovery rebuilt the resource here from the
		// sender's own report, which settled this operation
		e.send(from, wire.Msg{Type: replyType(m.Type), Gen: e.gen, ID: m.ID, LkID: m.LkID, Name: m.Name, Result: resultNotMaster, Mode: locktable.IV})
		return
	}
	if e.owned[m.Name] == nil {
		if rs := e.rsbs[m.Name]; rs != nil && rs.lookupID != 0 {
			// we are looking it up ourselves and may be its master
			rs.heldReqs = append(rs.heldReqs, e.in(from, m))
			return
		}
		e.send(from, wire.Msg{Type: replyType(m.Type), Gen: e.gen, ID: m.ID, LkID: m.LkID, Name: m.Name, Result: resultNotMaster, Mode: locktable.IV})
		return
	}
	inc, _ := e.viewInc(from)
	rep, ev, err := e.masterOp(from, inc, m)
	reply := replyMsg(replyType(m.Type), e.gen, m.ID, m.LkID, m.Name, rep, err)
	if err != nil {
		e.logf("refusing %v of lock %d:%x on %q: %v", m.Type, from, m.LkID, m.Name, err)
	}
	e.send(from, reply)
	e.dispatch(m.Name, ev)
}

func (e *Engine) masterOp(from NodeID, inc uint64, m wire.Msg) (locktable.Reply, []locktable.Event, error) {
	id := locktable.LockID{Node: from, ID: m.LkID}
	defer e.touch(m.Name)
	switch m.Type {
	case wire.TypeRequest:
		return e.table.Request(m.Name, id, inc, m.Mode, m.Flags, m.LVB, m.Has(wire.BitWantBast))
	case wire.TypeConvert:
		return e.table.Convert(m.Name, id, m.Mode, m.Flags, m.LVB)
	case wire.TypeUnlock:
		return e.table.Unlock(m.Name, id, m.Flags, m.LVB)
	default:
		return e.table.Cancel(m.Name, id)
	}
}

func replyMsg(t wire.Type, gen, id uint64, lkid uint32, name string, rep locktable.Reply, err error) wire.Msg {
	m := wire.Msg{Type: t, Gen: gen, ID: id, LkID: lkid, Name: name, Result: rep.Result, Mode: rep.Mode, SB: rep.SB, LVB: rep.LVB, LVBSeq: rep.LVBSeq}
	if err != nil {
		m.Result, m.Mode = ResultInvalid, locktable.IV
	}
	return m
}

// masterLocal runs an operation of a local lock on a resource this node
// masters, and applies the reply as if it had come over the network.
func (e *Engine) masterLocal(lk *plock, m wire.Msg) {
	if e.owned[lk.name] == nil {
		e.own(lk.name)
	}
	rep, ev, err := e.masterOp(e.self, e.inc, m)
	if err != nil {
		e.logf("local %v of lock %x on %q: %v", m.Type, lk.id, lk.name, err)
	}
	reply := replyMsg(replyType(m.Type), e.gen, m.ID, m.LkID, m.Name, rep, err)
	e.handleNormal(e.self, reply)
	e.dispatch(lk.name, ev)
}

// dispatch delivers a master's events: to local locks directly, to remote
// ones as grant and bast messages.
func (e *Engine) dispatch(name string, ev []locktable.Event) {
	for _, x := range ev {
		t := wire.TypeGrant
		if x.Kind == locktable.EventBast {
			t = wire.TypeBast
		}
		m := wire.Msg{Type: t, Gen: e.gen, LkID: x.Lock.ID, Name: name, Mode: x.Mode, SB: x.SB, LVB: x.LVB, LVBSeq: x.LVBSeq}
		if x.Lock.Node == e.self {
			e.handleNormal(e.self, m)
		} else {
			e.send(x.Lock.Node, m)
		}
	}
}
