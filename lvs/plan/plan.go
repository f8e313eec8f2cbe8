package plan

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/replicad/replicad/lvs/model"
)

// Kind is what an operation does.
type Kind uint8

// Operation kinds, in the order a plan lists them.
const (
	CreateService Kind = iota + 1
	UpdateService
	CreateRealServer
	UpdateRealServer
	DeleteRealServer
	DeleteService
)

func (k Kind) String() string {
	switch k {
	case CreateService:
		return "create-service"
	case UpdateService:
		return "update-service"
	case CreateRealServer:
		return "create-real-server"
	case UpdateRealServer:
		return "update-real-server"
	case DeleteRealServer:
		return "delete-real-server"
	case DeleteService:
		return "delete-service"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Op is one step. Service is the whole desired service (for DeleteService,
// the observed one, so a backend knows what to tear down); Prev is the
// observed service for UpdateService and for real-server operations on a
// service that already exists. RealServer is set for real-server
// operations (for DeleteRealServer, the observed real server).
type Op struct {
	Kind       Kind
	Service    model.Service
	Prev       *model.Service
	RealServer model.RealServer
}

func (o Op) String() string {
	switch o.Kind {
	case CreateRealServer, UpdateRealServer, DeleteRealServer:
		return fmt.Sprintf("%s %s %s weight=%d fwd=%s", o.Kind, o.Service.Key, o.RealServer.Addr, o.RealServer.Weight, o.RealServer.Forward)
	case CreateService, UpdateService:
		return fmt.Sprintf("%s %s sched=%s persist=%s/%d", o.Kind, o.Service.Key, o.Service.Scheduler, o.Service.Persistence.Timeout, o.Service.Persistence.PrefixLen)
	}
	return fmt.Sprintf("%s %s", o.Kind, o.Service.Key)
}

// Plan returns the operations that take observed to desired. Real servers
// are compared by address; services by key.
func Plan(desired []model.Service, observed []model.Observed) ([]Op, error) {
	want := make(map[model.Key]model.Service, len(desired))
	for _, s := range desired {
		if _, dup := want[s.Key]; dup {
			return nil, fmt.Errorf("%w: service %s", ErrDuplicate, s.Key)
		}
		seen := make(map[netip.AddrPort]bool, len(s.RealServers))
		for _, rs := range s.RealServers {
			if seen[rs.Addr] {
				return nil, fmt.Errorf("%w: real server %s in service %s", ErrDuplicate, rs.Addr, s.Key)
			}
			seen[rs.Addr] = true
		}
		s = s.Clone()
		s.Normalize()
		want[s.Key] = s
	}
	have := make(map[model.Key]model.Observed, len(observed))
	for _, o := range observed {
		o.Service = o.Service.Clone()
		o.Normalize()
		have[o.Key] = o
	}

	var ops []Op
	for _, key := range sortedKeys(want) {
		d := want[key]
		o, exists := have[key]
		if !exists {
			ops = append(ops, Op{Kind: CreateService, Service: d})
			for _, rs := range d.RealServers {
				ops = append(ops, Op{Kind: CreateRealServer, Service: d, RealServer: rs})
			}
			continue
		}
		prev := o.Service.Clone()
		if !d.SameAttrs(prev) {
			ops = append(ops, Op{Kind: UpdateService, Service: d, Prev: &prev})
		}
		for _, rs := range d.RealServers {
			cur, ok := prev.RealServer(rs.Addr)
			switch {
			case !ok:
				ops = append(ops, Op{Kind: CreateRealServer, Service: d, Prev: &prev, RealServer: rs})
			case !cur.SameAttrs(rs):
				ops = append(ops, Op{Kind: UpdateRealServer, Service: d, Prev: &prev, RealServer: rs})
			}
		}
		for _, cur := range prev.RealServers {
			if _, ok := d.RealServer(cur.Addr); !ok {
				ops = append(ops, Op{Kind: DeleteRealServer, Service: d, Prev: &prev, RealServer: cur})
			}
		}
	}
	for _, key := range sortedKeys(have) {
		o := have[key]
		if _, ok := want[key]; ok || !o.Owned {
			continue
		}
		ops = append(ops, Op{Kind: DeleteService, Service: o.Service})
	}
	slices.SortStableFunc(ops, func(a, b Op) int { return int(a.Kind) - int(b.Kind) })
	return ops, nil
}

func sortedKeys[V any](m map[model.Key]V) []model.Key {
	keys := make([]model.Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, model.Key.Compare)
	return keys
}

// Affected returns the keys of the services a plan touches, sorted, each
// once.
func Affected(ops []Op) []model.Key {
	var keys []model.Key
	for _, op := range ops {
		if !slices.Contains(keys, op.Service.Key) {
			keys = append(keys, op.Service.Key)
		}
	}
	slices.SortFunc(keys, model.Key.Compare)
	return keys
}
