package nftrules

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"

	"github.com/replicad/replicad/lvs/model"
	"github.com/replicad/replicad/lvs/plan"
)

// ActionKind is one nftables call.
type ActionKind uint8

// Action kinds; each maps to one method of *nftables.Conn.
const (
	AddTable ActionKind = iota + 1
	DelTable
	AddChain
	FlushChain
	DelChain
	AddSet // with elements
	DelSet
	FlushSet
	AddRule
)

func (k ActionKind) String() string {
	return [...]string{"?", "add-table", "del-table", "add-chain", "flush-chain", "del-chain", "add-set", "del-set", "flush-set", "add-rule"}[k]
}

// Action is one step of a batch.
type Action struct {
	Kind  ActionKind
	Chain *nftables.Chain // AddChain, FlushChain, DelChain
	Set   *nftables.Set   // AddSet, DelSet
	Elems []nftables.SetElement
	Rule  *nftables.Rule // AddRule
}

// String is "kind name" (for tests and debug logs).
func (a Action) String() string {
	switch a.Kind {
	case AddChain, FlushChain, DelChain:
		return a.Kind.String() + " " + a.Chain.Name
	case AddSet, DelSet, FlushSet:
		return fmt.Sprintf("%s %s (%d elements)", a.Kind, a.Set.Name, len(a.Elems))
	case AddRule:
		c, _ := Comment(a.Rule)
		return fmt.Sprintf("%s %s %q", a.Kind, a.Rule.Chain.Name, c)
	}
	return a.Kind.String()
}

// Counters carries connection counts of existing real servers into chains a
// batch rebuilds, so that a weight change does not zero them.
type Counters map[model.Key]map[netip.AddrPort]uint64

// TableState is what the backend found of the replicad table.
type TableState uint8

// Table states (from Snapshot and Decode).
const (
	// TableIntact: the table exists and decodes; only what changed is
	// written.
	TableIntact TableState = iota
	// TableMissing: the batch creates the table and its base chains.
	TableMissing
	// TableDamaged: the batch deletes the table first and recreates it
	// (Decode then reported no services, so the plan creates everything).
	TableDamaged
)

// StateOf classifies a snapshot and its decoding.
func StateOf(snap Snapshot, d Decoded) TableState {
	switch {
	case !snap.TableExists:
		return TableMissing
	case d.Damaged != "":
		return TableDamaged
	}
	return TableIntact
}

// BuildBatch orders everything the plan needs into one batch, applied
// atomically by a single netlink transaction. desired is the whole desired
// state. An empty plan on an intact table gives an empty batch:
// re-applying an unchanged state writes nothing. On an intact table only
// the chains of changed services are written, and the dispatch chain only
// when services come or go, so rules (and counters) of everything else keep
// their handles.
func BuildBatch(l Layout, desired []model.Service, ops []plan.Op, counters Counters, state TableState) ([]Action, error) {
	if len(ops) == 0 && state != TableDamaged {
		return nil, nil
	}
	for _, s := range desired {
		if err := checkExpressible(s); err != nil {
			return nil, err
		}
	}
	type change struct {
		desired *model.Service // nil when deleted
		prev    *model.Service // nil when new
		created []netip.AddrPort
		updated []netip.AddrPort
		deleted []netip.AddrPort
	}
	changes := map[model.Key]*change{}
	get := func(k model.Key) *change {
		if c, ok := changes[k]; ok {
			return c
		}
		c := &change{}
		changes[k] = c
		return c
	}
	for _, op := range ops {
		c := get(op.Service.Key)
		svc := op.Service.Clone()
		switch op.Kind {
		case plan.CreateService:
			c.desired = &svc
		case plan.DeleteService:
			c.prev = &svc
		case plan.UpdateService:
			c.desired, c.prev = &svc, op.Prev
		case plan.CreateRealServer:
			c.desired = &svc
			if op.Prev != nil {
				c.prev = op.Prev
			}
			c.created = append(c.created, op.RealServer.Addr)
		case plan.UpdateRealServer:
			c.desired, c.prev = &svc, op.Prev
			c.updated = append(c.updated, op.RealServer.Addr)
		case plan.DeleteRealServer:
			c.desired, c.prev = &svc, op.Prev
			c.deleted = append(c.deleted, op.RealServer.Addr)
		}
	}

	var out []Action
	fresh := state != TableIntact
	dispatchChanged := fresh
	for _, op := range ops {
		dispatchChanged = dispatchChanged || op.Kind == plan.CreateService || op.Kind == plan.DeleteService
	}
	if state == TableDamaged {
		out = append(out, Action{Kind: DelTable})
	}
	base := l.BaseChains()
	if fresh {
		out = append(out, Action{Kind: AddTable})
		for _, c := range base {
			out = append(out, Action{Kind: AddChain, Chain: c})
		}
	}
	if dispatchChanged {
		// Before any service chain goes away: the dispatch rules jump to them.
		out = append(out, Action{Kind: FlushChain, Chain: base[2]})
	}

	keys := make([]model.Key, 0, len(changes))
	for k := range changes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, model.Key.Compare)
	for _, k := range keys {
		c := changes[k]
		svcChain := l.ServiceChain(k)
		switch {
		case c.desired == nil: // deleted
			prev := *c.prev
			out = append(out, Action{Kind: FlushChain, Chain: svcChain})
			out = append(out, Action{Kind: DelSet, Set: l.PickMap(k)})
			for _, rs := range prev.RealServers {
				out = append(out, Action{Kind: FlushChain, Chain: l.RealServerChain(k, rs.Addr)})
			}
			for _, rs := range prev.RealServers {
				out = append(out, Action{Kind: DelChain, Chain: l.RealServerChain(k, rs.Addr)})
				if set := l.PersistSet(prev, rs.Addr); set != nil {
					out = append(out, Action{Kind: DelSet, Set: set})
				}
			}
			out = append(out, Action{Kind: DelChain, Chain: svcChain})
			continue

		case c.prev == nil: // new
			d := *c.desired
			out = append(out, Action{Kind: AddChain, Chain: svcChain})
			for _, rs := range d.RealServers {
				if set := l.PersistSet(d, rs.Addr); set != nil {
					out = append(out, Action{Kind: AddSet, Set: set})
				}
				out = append(out, Action{Kind: AddChain, Chain: l.RealServerChain(k, rs.Addr)})
				for _, r := range l.RealServerRules(d, rs, 0) {
					out = append(out, Action{Kind: AddRule, Rule: r})
				}
			}

		default: // changed in place
			d, prev := *c.desired, *c.prev
			persistChanged := d.Persistence != prev.Persistence
			var kept []netip.AddrPort // in both, not created
			for _, rs := range prev.RealServers {
				if _, still := d.RealServer(rs.Addr); still && !slices.Contains(c.created, rs.Addr) {
					kept = append(kept, rs.Addr)
				}
			}
			rebuild := slices.Clone(c.updated)
			if persistChanged {
				rebuild = kept
			}
			slices.SortFunc(rebuild, netip.AddrPort.Compare)
			out = append(out, Action{Kind: FlushChain, Chain: svcChain})
			// The pick map's elements hold references to real-server
			// chains: it goes before any of them does, and is recreated.
			out = append(out, Action{Kind: DelSet, Set: l.PickMap(k)})
			for _, a := range append(slices.Clone(rebuild), c.deleted...) {
				out = append(out, Action{Kind: FlushChain, Chain: l.RealServerChain(k, a)})
			}
			for _, a := range c.deleted {
				out = append(out, Action{Kind: DelChain, Chain: l.RealServerChain(k, a)})
				if set := l.PersistSet(prev, a); set != nil {
					out = append(out, Action{Kind: DelSet, Set: set})
				}
			}
			if persistChanged {
				for _, a := range kept {
					if set := l.PersistSet(prev, a); set != nil {
						out = append(out, Action{Kind: DelSet, Set: set})
					}
				}
				for _, a := range kept {
					if set := l.PersistSet(d, a); set != nil {
						out = append(out, Action{Kind: AddSet, Set: set})
					}
				}
			} else {
				// A server that stops taking connections forgets its
				// clients, so they do not return when it comes back.
				for _, a := range c.updated {
					was, _ := prev.RealServer(a)
					now, _ := d.RealServer(a)
					if set := l.PersistSet(d, a); set != nil && was.Weight > 0 && now.Weight == 0 {
						out = append(out, Action{Kind: FlushSet, Set: set})
					}
				}
			}
			for _, a := range c.created {
				if set := l.PersistSet(d, a); set != nil {
					out = append(out, Action{Kind: AddSet, Set: set})
				}
				out = append(out, Action{Kind: AddChain, Chain: l.RealServerChain(k, a)})
			}
			for _, a := range append(rebuild, c.created...) {
				rs, _ := d.RealServer(a)
				for _, r := range l.RealServerRules(d, rs, counters[k][a]) {
					out = append(out, Action{Kind: AddRule, Rule: r})
				}
			}
		}
		rules, elems, err := l.ServiceRules(*c.desired)
		if err != nil {
			return nil, err
		}
		out = append(out, Action{Kind: AddSet, Set: l.PickMap(k), Elems: elems})
		for _, r := range rules {
			out = append(out, Action{Kind: AddRule, Rule: r})
		}
	}

	if fresh {
		for _, r := range l.BaseRules() {
			out = append(out, Action{Kind: AddRule, Rule: r})
		}
	}
	if dispatchChanged {
		sorted := slices.Clone(desired)
		slices.SortFunc(sorted, func(a, b model.Service) int { return a.Key.Compare(b.Key) })
		for _, r := range l.DispatchRules(sorted) {
			out = append(out, Action{Kind: AddRule, Rule: r})
		}
	}
	return out, nil
}
