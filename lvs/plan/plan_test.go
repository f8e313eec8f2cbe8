package plan

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/lvs/model"
)

func key(s string) model.Key {
	k, err := model.ParseKey(s)
	if err != nil {
		panic(err)
	}
	return k
}

func rs(addr string, w uint32) model.RealServer {
	return model.RealServer{Addr: netip.MustParseAddrPort(addr), Weight: w, Forward: model.NAT}
}

func svc(k string, sched model.Scheduler, servers ...model.RealServer) model.Service {
	return model.Service{Key: key(k), Scheduler: sched, RealServers: servers}
}

func describe(ops []Op) string {
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintln(&b, op)
	}
	return b.String()
}

func TestPlanCreatesServiceThenServers(t *testing.T) {
	d := []model.Service{svc("tcp/10.0.0.1:80", model.RR, rs("10.0.1.2:80", 1), rs("10.0.1.1:80", 2))}
	ops, err := Plan(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "create-service tcp/10.0.0.1:80 sched=rr persist=0s/0\n" +
		"create-real-server tcp/10.0.0.1:80 10.0.1.1:80 weight=2 fwd=nat\n" +
		"create-real-server tcp/10.0.0.1:80 10.0.1.2:80 weight=1 fwd=nat\n"
	if got := describe(ops); got != want {
		t.Fatalf("plan:\n%s\nwant:\n%s", got, want)
	}
}

func TestPlanNothingToDoWhenEqual(t *testing.T) {
	d := svc("tcp/10.0.0.1:80", model.WRR, rs("10.0.1.1:80", 2), rs("10.0.1.2:80", 1))
	o := model.Observed{Service: svc("tcp/10.0.0.1:80", model.WRR, rs("10.0.1.2:80", 1), rs("10.0.1.1:80", 2)), Owned: true}
	ops, err := Plan([]model.Service{d}, []model.Observed{o})
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 0 {
		t.Fatalf("equal state (different order) planned:\n%s", describe(ops))
	}
}

// Foreign IPVS services (created by ipvsadm, another daemon) are never
// touched; only owned services that are no longer desired are deleted.
func TestPlanLeavesForeignServicesAlone(t *testing.T) {
	foreign := model.Observed{Service: svc("tcp/10.9.9.9:22", model.WLC, rs("10.9.9.10:22", 1)), Owned: false}
	stale := model.Observed{Service: svc("tcp/10.0.0.1:81", model.RR, rs("10.0.1.1:81", 1)), Owned: true}
	ops, err := Plan(nil, []model.Observed{foreign, stale})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(ops), "delete-service tcp/10.0.0.1:81\n"; got != want {
		t.Fatalf("plan:\n%s\nwant:\n%s", got, want)
	}
}

func TestPlanAdoptsADesiredForeignService(t *testing.T) {
	foreign := model.Observed{Service: svc("tcp/10.0.0.1:80", model.WLC, rs("10.0.1.9:80", 1)), Owned: false}
	d := svc("tcp/10.0.0.1:80", model.RR, rs("10.0.1.1:80", 1))
	ops, err := Plan([]model.Service{d}, []model.Observed{foreign})
	if err != nil {
		t.Fatal(err)
	}
	want := "update-service tcp/10.0.0.1:80 sched=rr persist=0s/0\n" +
		"create-real-server tcp/10.0.0.1:80 10.0.1.1:80 weight=1 fwd=nat\n" +
		"delete-real-server tcp/10.0.0.1:80 10.0.1.9:80 weight=1 fwd=nat\n"
	if got := describe(ops); got != want {
		t.Fatalf("plan:\n%s\nwant:\n%s", got, want)
	}
}

// A changed pool never goes through an empty state: new servers are added
// before old ones are removed.
func TestPlanAddsBeforeItRemoves(t *testing.T) {
	o := model.Observed{Service: svc("tcp/10.0.0.1:80", model.RR, rs("10.0.1.1:80", 1)), Owned: true}
	d := svc("tcp/10.0.0.1:80", model.RR, rs("10.0.1.2:80", 1))
	ops, err := Plan([]model.Service{d}, []model.Observed{o})
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 || ops[0].Kind != CreateRealServer || ops[1].Kind != DeleteRealServer {
		t.Fatalf("plan:\n%s", describe(ops))
	}
	if ops[0].Prev == nil || len(ops[0].Prev.RealServers) != 1 {
		t.Fatalf("real-server op on an existing service must carry Prev: %+v", ops[0])
	}
}

func TestPlanRejectsDuplicates(t *testing.T) {
	_, err := Plan([]model.Service{svc("tcp/10.0.0.1:80", model.RR), svc("tcp/10.0.0.1:80", model.WRR)}, nil)
	if !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate service: %v", err)
	}
	_, err = Plan([]model.Service{svc("tcp/10.0.0.1:80", model.RR, rs("10.0.1.1:80", 1), rs("10.0.1.1:80", 2))}, nil)
	if !errors.Is(err, ErrDuplicate) {
		t.Fatalf("duplicate real server: %v", err)
	}
}

// apply is the dumb reference: what a backend does with a plan.
func apply(obs []model.Observed, ops []Op) []model.Observed {
	m := map[model.Key]*model.Observed{}
	var order []model.Key
	for _, o := range obs {
		o := o
		o.Service = o.Service.Clone()
		m[o.Key] = &o
		order = append(order, o.Key)
	}
	for _, op := range ops {
		switch op.Kind {
		case CreateService:
			s := op.Service.Clone()
			s.RealServers = nil
			m[s.Key] = &model.Observed{Service: s, Owned: true}
			order = append(order, s.Key)
		case UpdateService:
			o := m[op.Service.Key]
			o.Scheduler, o.Persistence, o.Owned = op.Service.Scheduler, op.Service.Persistence, true
		case CreateRealServer:
			o := m[op.Service.Key]
			o.Owned = true
			o.RealServers = append(o.RealServers, op.RealServer)
		case UpdateRealServer, DeleteRealServer:
			o := m[op.Service.Key]
			o.Owned = true
			i := slices.IndexFunc(o.RealServers, func(r model.RealServer) bool { return r.Addr == op.RealServer.Addr })
			if op.Kind == UpdateRealServer {
				o.RealServers[i] = op.RealServer
			} else {
				o.RealServers = slices.Delete(o.RealServers, i, i+1)
			}
		case DeleteService:
			delete(m, op.Service.Key)
		}
	}
	var out []model.Observed
	for _, k := range order {
		if o, ok := m[k]; ok && !slices.ContainsFunc(out, func(x model.Observed) bool { return x.Key == k }) {
			out = append(out, *o)
		}
	}
	return out
}

func randomState(r *rand.Rand) []model.Service {
	keys := []string{"tcp/10.0.0.1:80", "tcp/10.0.0.1:443", "udp/10.0.0.1:53", "fwmark/3/ipv4", "tcp/[2001:db8::1]:80"}
	scheds := []model.Scheduler{model.RR, model.WRR, model.SH}
	var out []model.Service
	for _, k := range keys {
		if r.IntN(2) == 0 {
			continue
		}
		s := svc(k, scheds[r.IntN(len(scheds))])
		if r.IntN(3) == 0 {
			s.Persistence = model.Persistence{Timeout: time.Duration(1+r.IntN(3)) * time.Minute, PrefixLen: 24}
		}
		for i := range 4 {
			if r.IntN(2) == 0 {
				continue
			}
			a := fmt.Sprintf("10.0.1.%d:80", i+1)
			if s.Key.Family == model.IPv6 {
				a = fmt.Sprintf("[2001:db8:1::%d]:80", i+1)
			}
			s.RealServers = append(s.RealServers, rs(a, uint32(r.IntN(3))))
		}
		out = append(out, s)
	}
	return out
}

// Property: applying a plan reaches the desired state for owned and desired
// services, leaves foreign ones bit-for-bit alone, and re-planning yields
// nothing (idempotence).
func TestPlanPropertyConvergesAndIsIdempotent(t *testing.T) {
	r := testenv.Rand(t)
	for iter := range 500 {
		desired := randomState(r)
		var observed []model.Observed
		for _, s := range randomState(r) {
			observed = append(observed, model.Observed{Service: s, Owned: r.IntN(4) != 0})
		}
		ops, err := Plan(desired, observed)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(ops); i++ {
			if ops[i-1].Kind > ops[i].Kind {
				t.Fatalf("iter %d: ops out of order:\n%s", iter, describe(ops))
			}
		}
		after := apply(observed, ops)
		again, err := Plan(desired, after)
		if err != nil {
			t.Fatal(err)
		}
		if len(again) != 0 {
			t.Fatalf("iter %d: not idempotent; second plan:\n%s\nfirst plan:\n%s", iter, describe(again), describe(ops))
		}
		for _, o := range observed {
			isDesired := slices.ContainsFunc(desired, func(s model.Service) bool { return s.Key == o.Key })
			i := slices.IndexFunc(after, func(a model.Observed) bool { return a.Key == o.Key })
			switch {
			case !o.Owned && !isDesired:
				if i < 0 || !reflect.DeepEqual(after[i], o) {
					t.Fatalf("iter %d: foreign service %s was touched", iter, o.Key)
				}
			case o.Owned && !isDesired:
				if i >= 0 {
					t.Fatalf("iter %d: stale owned service %s kept", iter, o.Key)
				}
			}
		}
		for _, d := range desired {
			i := slices.IndexFunc(after, func(a model.Observed) bool { return a.Key == d.Key })
			if i < 0 {
				t.Fatalf("iter %d: desired %s missing", iter, d.Key)
			}
			got := after[i].Service.Clone()
			got.Normalize()
			want := d.Clone()
			want.Normalize()
			if !reflect.DeepEqual(got.RealServers, want.RealServers) && !(len(got.RealServers) == 0 && len(want.RealServers) == 0) {
				t.Fatalf("iter %d: %s real servers %v, want %v", iter, d.Key, got.RealServers, want.RealServers)
			}
		}
	}
}

func TestAffected(t *testing.T) {
	d := []model.Service{
		svc("tcp/10.0.0.2:80", model.RR, rs("10.0.1.1:80", 1)),
		svc("tcp/10.0.0.1:80", model.RR, rs("10.0.1.1:80", 1), rs("10.0.1.2:80", 1)),
	}
	ops, _ := Plan(d, nil)
	got := Affected(ops)
	if len(got) != 2 || got[0] != key("tcp/10.0.0.1:80") {
		t.Fatalf("Affected = %v", got)
	}
}
