package nftrules

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/replicad/replicad/lvs/model"
)

// Snapshot is what the backend read from the kernel: every chain of the
// replicad table with its rules, and the names of its named sets.
type Snapshot struct {
	TableExists bool
	Chains      map[string][]*nftables.Rule
	Sets        []string
}

// Decoded is the result of Decode.
type Decoded struct {
	Services []model.Observed
	// Damaged explains why the table does not look like something replicad
	// rendered (a chain or rule edited, added or removed by hand). The
	// backend then rebuilds the whole table in one transaction. Empty when
	// the table is intact or absent.
	Damaged string
}

func fields(c, prefix string) (map[string]string, bool) {
	rest, ok := strings.CutPrefix(c, prefix)
	if !ok {
		return nil, false
	}
	m := map[string]string{}
	for _, f := range strings.Fields(rest) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, false
		}
		m[k] = v
	}
	return m, true
}

func parseServiceComment(c string) (model.Service, error) {
	f, ok := fields(c, svcCommentPrefix)
	if !ok {
		return model.Service{}, fmt.Errorf("not a service comment: %q", c)
	}
	k, err := model.ParseKey(f["key"])
	if err != nil {
		return model.Service{}, err
	}
	timeout, err := time.ParseDuration(f["persist"])
	if err != nil {
		return model.Service{}, fmt.Errorf("persist: %w", err)
	}
	prefix, err := strconv.Atoi(f["prefix"])
	if err != nil {
		return model.Service{}, fmt.Errorf("prefix: %w", err)
	}
	return model.Service{Key: k, Scheduler: model.Scheduler(f["sched"]), Persistence: model.Persistence{Timeout: timeout, PrefixLen: prefix}}, nil
}

func parseRealServerComment(c string) (model.RealServer, error) {
	f, ok := fields(c, rsCommentPrefix)
	if !ok {
		return model.RealServer{}, fmt.Errorf("not a real-server comment: %q", c)
	}
	a, err := netip.ParseAddrPort(f["addr"])
	if err != nil {
		return model.RealServer{}, err
	}
	w, err := strconv.ParseUint(f["weight"], 10, 32)
	if err != nil {
		return model.RealServer{}, fmt.Errorf("weight: %w", err)
	}
	return model.RealServer{Addr: a, Weight: uint32(w), Forward: model.Forward(f["fwd"])}, nil
}

func isJumpTo(r *nftables.Rule, chain string) bool {
	if len(r.Exprs) == 0 {
		return false
	}
	v, ok := r.Exprs[len(r.Exprs)-1].(*expr.Verdict)
	return ok && v.Kind == expr.VerdictJump && v.Chain == chain
}

func counterOf(r *nftables.Rule) uint64 {
	for _, e := range r.Exprs {
		if c, ok := e.(*expr.Counter); ok {
			return c.Packets
		}
	}
	return 0
}

// Decode reads the services back from a snapshot of the replicad table.
func Decode(snap Snapshot) Decoded {
	if !snap.TableExists {
		return Decoded{}
	}
	damaged := func(format string, a ...any) Decoded { return Decoded{Damaged: fmt.Sprintf(format, a...)} }
	for _, base := range []string{ChainPrerouting, ChainOutput} {
		rules, ok := snap.Chains[base]
		if !ok || len(rules) != 1 || !isJumpTo(rules[0], ChainDispatch) {
			return damaged("base chain %s missing or edited", base)
		}
	}
	dispatch, ok := snap.Chains[ChainDispatch]
	if !ok {
		return damaged("chain %s missing", ChainDispatch)
	}
	accounted := map[string]bool{ChainPrerouting: true, ChainOutput: true, ChainDispatch: true}
	wantSets := map[string]bool{}
	var out []model.Observed
	names := make([]string, 0, len(snap.Chains))
	for name := range snap.Chains {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		rules := snap.Chains[name]
		if !strings.HasPrefix(name, "svc_") || strings.Contains(name, "_rs_") {
			continue
		}
		if len(rules) == 0 {
			return damaged("chain %s is empty", name)
		}
		c, _ := Comment(rules[0])
		svc, err := parseServiceComment(c)
		if err != nil {
			return damaged("chain %s: %v", name, err)
		}
		if ServiceChainName(svc.Key) != name {
			return damaged("chain %s holds service %s", name, svc.Key)
		}
		accounted[name] = true
		wantSets[PickMapName(svc.Key)] = true
		obs := model.Observed{Owned: true, RealServerStats: map[netip.AddrPort]model.Stats{}}
		prefix := name + "_rs_"
		for _, rsName := range names {
			if !strings.HasPrefix(rsName, prefix) {
				continue
			}
			rsRules := snap.Chains[rsName]
			if len(rsRules) == 0 {
				return damaged("chain %s is empty", rsName)
			}
			last := rsRules[len(rsRules)-1]
			rc, _ := Comment(last)
			rs, err := parseRealServerComment(rc)
			if err != nil {
				return damaged("chain %s: %v", rsName, err)
			}
			if RealServerChainName(svc.Key, rs.Addr) != rsName {
				return damaged("chain %s holds real server %s", rsName, rs.Addr)
			}
			want := 1
			if svc.Persistence.Enabled() {
				want = 2
			}
			if len(rsRules) != want {
				return damaged("chain %s has %d rules, want %d", rsName, len(rsRules), want)
			}
			accounted[rsName] = true
			if svc.Persistence.Enabled() {
				wantSets[PersistSetName(svc.Key, rs.Addr)] = true
			}
			svc.RealServers = append(svc.RealServers, rs)
			st := model.Stats{Connections: counterOf(last)}
			obs.RealServerStats[rs.Addr] = st
			obs.Stats = obs.Stats.Add(st)
		}
		svc.Normalize()
		if got, want := len(rules), expectedRules(svc); got != want {
			return damaged("chain %s has %d rules, want %d", name, got, want)
		}
		if !slices.ContainsFunc(dispatch, func(r *nftables.Rule) bool { return isJumpTo(r, name) }) {
			return damaged("no dispatch rule for %s", name)
		}
		obs.Service = svc
		out = append(out, obs)
	}
	for _, name := range names {
		if !accounted[name] {
			return damaged("unexpected chain %s", name)
		}
	}
	if len(dispatch) != len(out) {
		return damaged("dispatch has %d rules for %d services", len(dispatch), len(out))
	}
	for _, s := range snap.Sets {
		if !wantSets[s] {
			return damaged("unexpected set %s", s)
		}
		delete(wantSets, s)
	}
	for s := range wantSets {
		return damaged("set %s missing", s)
	}
	return Decoded{Services: out}
}
