package lvs

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/replicad/replicad/lvs/health"
	"github.com/replicad/replicad/lvs/model"
)

// ValidationError lists every problem of a configuration. It wraps
// ErrInvalidConfig.
type ValidationError struct {
	Problems []string // "lvs.services[0].scheduler: \"foo\"; want one of ..."
}

func (e *ValidationError) Error() string {
	return ErrInvalidConfig.Error() + ":\n  " + strings.Join(e.Problems, "\n  ")
}

func (e *ValidationError) Unwrap() error { return ErrInvalidConfig }

// serviceSpec is a validated service: the model service with configured
// weights, its failure policy and the checks of its real servers.
type serviceSpec struct {
	name   string
	svc    model.Service
	policy health.Policy
	checks map[netip.AddrPort]checkSpec
}

type checkSpec struct {
	cfg    CheckConfig // with defaults
	target netip.AddrPort
	hcfg   health.Config
	body   *regexp.Regexp
}

// Validate reports every problem in c, each with its field name and unit.
func (c Config) Validate() error {
	_, problems := c.compile()
	if len(problems) > 0 {
		return &ValidationError{Problems: problems}
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

func oneOf[T ~string](v T, allowed []T) string {
	s := make([]string, len(allowed))
	for i, a := range allowed {
		s[i] = string(a)
	}
	return fmt.Sprintf("%q; want one of %s", v, strings.Join(s, ", "))
}

func (c Config) compile() ([]serviceSpec, []string) {
	var p []string
	bad := func(field, format string, a ...any) { p = append(p, "lvs."+field+": "+fmt.Sprintf(format, a...)) }

	if !slices.Contains([]string{"auto", model.BackendIPVS, model.BackendNFTables}, c.Backend) {
		bad("backend", "%s", oneOf(c.Backend, []string{"auto", model.BackendIPVS, model.BackendNFTables}))
	}
	if !regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,63}$`).MatchString(c.NFTablesTable) {
		bad("nftables-table", "%q; want a name of letters, digits and _ (at most 64)", c.NFTablesTable)
	}
	if c.ResyncInterval < time.Second {
		bad("resync-interval", "%s; want at least 1s", c.ResyncInterval)
	}

	vipNames := map[string]bool{}
	vipAddrs := map[netip.Addr]bool{}
	for i, v := range c.VIPs {
		f := fmt.Sprintf("vips[%d]", i)
		if !nameRE.MatchString(v.Name) {
			bad(f+".name", "%q; want 1-63 letters, digits, '.', '_' or '-'", v.Name)
		} else if vipNames[v.Name] {
			bad(f+".name", "%q used twice", v.Name)
		}
		vipNames[v.Name] = true
		pfx, err := netip.ParsePrefix(v.Address)
		switch {
		case err != nil:
			bad(f+".address", "%q: %v; want addr/prefix-length", v.Address, err)
		case pfx.Addr().Zone() != "" || pfx.Addr().IsUnspecified() || pfx.Addr().IsMulticast():
			bad(f+".address", "%q is not a unicast address", v.Address)
		case vipAddrs[pfx.Addr()]:
			bad(f+".address", "%s used twice", pfx.Addr())
		default:
			vipAddrs[pfx.Addr()] = true
		}
		if v.Interface == "" || len(v.Interface) > 15 {
			bad(f+".interface", "%q; want an interface name (1-15 characters)", v.Interface)
		}
		if v.Label != "" {
			if err == nil && pfx.Addr().Is6() {
				bad(f+".label", "labels exist for IPv4 only")
			}
			if !strings.HasPrefix(v.Label, v.Interface) || len(v.Label) > 15 {
				bad(f+".label", "%q; want the interface name followed by a suffix, at most 15 characters", v.Label)
			}
		}
		if v.ARPCount > 100 {
			bad(f+".arp-count", "%d; want at most 100 packets", v.ARPCount)
		}
		if v.ARPInterval < 0 || v.ARPInterval > time.Minute {
			bad(f+".arp-interval", "%s; want 0..1m", v.ARPInterval)
		}
		if v.MonitorInterval < 0 || (v.MonitorInterval > 0 && v.MonitorInterval < 100*time.Millisecond) {
			bad(f+".monitor-interval", "%s; want at least 100ms", v.MonitorInterval)
		}
	}

	var specs []serviceSpec
	names := map[string]bool{}
	keys := map[model.Key]string{}
	for i, sc := range c.Services {
		f := fmt.Sprintf("services[%d]", i)
		spec, ok := compileService(sc, f, bad)
		if !nameRE.MatchString(sc.Name) {
			bad(f+".name", "%q; want 1-63 letters, digits, '.', '_' or '-'", sc.Name)
			ok = false
		} else if names[sc.Name] {
			bad(f+".name", "%q used twice", sc.Name)
			ok = false
		}
		names[sc.Name] = true
		if !ok {
			continue
		}
		if other, dup := keys[spec.svc.Key]; dup {
			bad(f, "service %s is also defined by %q", spec.svc.Key, other)
			continue
		}
		keys[spec.svc.Key] = sc.Name
		specs = append(specs, spec)
	}
	return specs, p
}

// compileService validates one service; ok is false when a spec could not
// be built (problems were reported through bad).
func compileService(sc ServiceConfig, f string, bad func(field, format string, a ...any)) (serviceSpec, bool) {
	ok := true
	fail := func(field, format string, a ...any) {
		bad(field, format, a...)
		ok = false
	}
	spec := serviceSpec{name: sc.Name, checks: map[netip.AddrPort]checkSpec{}}
	var key model.Key
	keyOK := true
	switch {
	case sc.FWMark != 0:
		if sc.Address != "" {
			fail(f+".address", "set together with fwmark %d; want one of them", sc.FWMark)
		}
		if sc.Protocol != "" {
			fail(f+".protocol", "%q with fwmark; a firewall mark covers every protocol it marks", sc.Protocol)
		}
		fam := model.IPv4
		if sc.Family != "" {
			var okf bool
			if fam, okf = model.ParseFamily(sc.Family); !okf {
				fail(f+".family", "%q; want ipv4 or ipv6", sc.Family)
				keyOK = false
			}
		}
		key = model.Key{Family: fam, FWMark: sc.FWMark}
	default:
		proto := model.TCP
		if sc.Protocol != "" {
			var okp bool
			if proto, okp = model.ParseProtocol(sc.Protocol); !okp {
				fail(f+".protocol", "%q; want tcp or udp", sc.Protocol)
			}
		}
		if sc.Family != "" {
			fail(f+".family", "only for fwmark services; the address gives the family")
		}
		ap, err := netip.ParseAddrPort(sc.Address)
		if err != nil {
			fail(f+".address", "%q: %v; want addr:port (or set fwmark)", sc.Address, err)
			keyOK = false
		} else {
			a := ap.Addr().Unmap()
			if a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
				fail(f+".address", "%q is not a unicast address", sc.Address)
			}
			key = model.Key{Family: model.FamilyOf(a), Protocol: proto, Addr: a, Port: ap.Port()}
		}
	}
	sched := model.Scheduler(sc.Scheduler)
	if sched == "" {
		sched = DefaultScheduler
	}
	if !sched.Known() {
		fail(f+".scheduler", "%s", oneOf(sched, model.Schedulers))
	}
	defFwd := model.Forward(sc.Forward)
	if defFwd == "" {
		defFwd = DefaultForward
	}
	if !defFwd.Known() {
		fail(f+".forward", "%s", oneOf(defFwd, model.Forwards))
	}
	pers := model.Persistence{Timeout: sc.Persistence.Timeout, PrefixLen: sc.Persistence.PrefixLength}
	switch {
	case pers.Timeout < 0 || pers.Timeout%time.Second != 0 || pers.Timeout > 24*31*time.Hour:
		fail(f+".persistence.timeout", "%s; want whole seconds, 0 (off) to 744h", pers.Timeout)
	case pers.Timeout == 0 && pers.PrefixLen != 0:
		fail(f+".persistence.prefix-length", "%d without a persistence timeout", pers.PrefixLen)
	}
	if pers.PrefixLen == 0 {
		pers.PrefixLen = key.Family.Bits()
	}
	if pers.PrefixLen < 0 || pers.PrefixLen > key.Family.Bits() {
		fail(f+".persistence.prefix-length", "%d; want 0..%d bits", sc.Persistence.PrefixLength, key.Family.Bits())
	}
	if !pers.Enabled() {
		pers = model.Persistence{}
	}
	if key.Protocol != 0 && key.Port == 0 && !pers.Enabled() {
		fail(f+".address", "port 0 (every port) needs persistence, as in IPVS")
	}
	switch health.OnFailure(sc.OnFailure) {
	case "":
		spec.policy.OnFailure = DefaultOnFailure
	case health.Quiesce, health.Remove:
		spec.policy.OnFailure = health.OnFailure(sc.OnFailure)
	default:
		fail(f+".on-failure", "%q; want quiesce or remove", sc.OnFailure)
	}

	svc := model.Service{Key: key, Scheduler: sched, Persistence: pers}
	addrOf := func(field, s string) (netip.AddrPort, bool) {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			a, err2 := netip.ParseAddr(s)
			if err2 != nil {
				fail(field, "%q: want addr:port or addr", s)
				return netip.AddrPort{}, false
			}
			ap = netip.AddrPortFrom(a, key.Port)
		}
		a := ap.Addr().Unmap()
		if a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
			fail(field, "%q is not a unicast address", s)
			return netip.AddrPort{}, false
		}
		if keyOK && model.FamilyOf(a) != key.Family {
			fail(field, "%s is %s but the service is %s", a, model.FamilyOf(a), key.Family)
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(a, ap.Port()), true
	}

	if len(sc.RealServers) == 0 && sc.SorryServer == "" {
		fail(f+".real-servers", "empty; want at least one real server (or a sorry server)")
	}
	seen := map[netip.AddrPort]bool{}
	for j, rc := range sc.RealServers {
		rf := fmt.Sprintf("%s.real-servers[%d]", f, j)
		addr, okA := addrOf(rf+".address", rc.Address)
		if okA && seen[addr] {
			fail(rf+".address", "%s listed twice", addr)
		}
		seen[addr] = true
		rs := model.RealServer{Addr: addr, Weight: 1, Forward: defFwd}
		if rc.Weight != nil {
			if *rc.Weight < 0 || *rc.Weight > 65535 {
				fail(rf+".weight", "%d; want 0..65535", *rc.Weight)
			} else {
				rs.Weight = uint32(*rc.Weight)
			}
		}
		if rc.Forward != "" {
			rs.Forward = model.Forward(rc.Forward)
			if !rs.Forward.Known() {
				fail(rf+".forward", "%s", oneOf(rs.Forward, model.Forwards))
			}
		}
		if rs.Forward == model.Tunnel {
			rs.Tunnel = model.IPIP
			if rc.TunnelType != "" {
				rs.Tunnel = model.TunnelType(rc.TunnelType)
			}
			if !slices.Contains([]model.TunnelType{model.IPIP, model.GUE, model.GRE}, rs.Tunnel) {
				fail(rf+".tunnel-type", "%q; want ipip, gue or gre", rc.TunnelType)
			}
			if rs.Tunnel == model.GUE && (rc.TunnelPort < 1 || rc.TunnelPort > 65535) {
				fail(rf+".tunnel-port", "%d; gue needs a UDP port 1..65535", rc.TunnelPort)
			}
			rs.TunnelPort = uint16(rc.TunnelPort)
		} else if rc.TunnelType != "" || rc.TunnelPort != 0 {
			fail(rf+".tunnel-type", "set for forwarding %s; only tunnel uses it", rs.Forward)
		}
		if (rs.Forward == model.DR || rs.Forward == model.Tunnel) && okA && addr.Port() != key.Port && addr.Port() != 0 {
			fail(rf+".address", "port %d differs from the service port %d; %s forwarding cannot change ports", addr.Port(), key.Port, rs.Forward)
		}
		if key.IsFWMark() && okA && addr.Port() != 0 && rs.Forward == model.NAT {
			// IPVS would rewrite every marked port to this one; that is
			// almost never meant.
			fail(rf+".address", "port %d on a firewall-mark service; give the address only (the client's port is kept)", addr.Port())
		}
		svc.RealServers = append(svc.RealServers, rs)

		cc := sc.Check
		cf := f + ".check"
		if rc.Check != nil {
			cc, cf = *rc.Check, rf+".check"
		}
		if cs, okC := compileCheck(cc, cf, addr, fail); okC && cs != nil && okA {
			spec.checks[addr] = *cs
		}
	}
	if sc.SorryServer != "" {
		addr, okA := addrOf(f+".sorry-server", sc.SorryServer)
		if okA && seen[addr] {
			fail(f+".sorry-server", "%s is also a real server", addr)
		}
		spec.policy.Sorry = &model.RealServer{Addr: addr, Weight: 1, Forward: defFwd}
	}
	// With no real servers the service-level check is never used; still
	// validate it so a later add does not meet a broken default.
	if len(sc.RealServers) == 0 {
		compileCheck(sc.Check, f+".check", netip.AddrPortFrom(key.Addr, key.Port), fail)
	}
	svc.Normalize()
	spec.svc = svc
	return spec, ok
}

var checkTypes = []string{"none", "tcp", "http", "https", "mysql", "nfs", "exec"}

// compileCheck validates a check for one real server; it returns nil for
// type none.
func compileCheck(cc CheckConfig, f string, rs netip.AddrPort, fail func(field, format string, a ...any)) (*checkSpec, bool) {
	ok := true
	bad := func(field, format string, a ...any) {
		fail(field, format, a...)
		ok = false
	}
	c := cc.withDefaults()
	if !slices.Contains(checkTypes, c.Type) {
		bad(f+".type", "%s", oneOf(c.Type, checkTypes))
		return nil, false
	}
	if c.Type == "none" {
		return nil, true
	}
	if c.Interval < 100*time.Millisecond || c.Interval > time.Hour {
		bad(f+".interval", "%s; want 100ms..1h", c.Interval)
	}
	if c.Timeout <= 0 || c.Timeout > c.Interval {
		bad(f+".timeout", "%s; want more than 0 and at most the interval (%s)", c.Timeout, c.Interval)
	}
	if c.Rise < 1 || c.Rise > 100 {
		bad(f+".rise", "%d; want 1..100 checks", c.Rise)
	}
	if c.Fall < 1 || c.Fall > 100 {
		bad(f+".fall", "%d; want 1..100 checks", c.Fall)
	}
	port := rs.Port()
	if c.Port != 0 {
		if c.Port < 0 || c.Port > 65535 {
			bad(f+".port", "%d; want 1..65535", c.Port)
		}
		port = uint16(c.Port)
	}
	if port == 0 && c.Type != "exec" {
		bad(f+".port", "unset and the real server %s has no port; want 1..65535", rs.Addr())
	}
	cs := &checkSpec{cfg: c, target: netip.AddrPortFrom(rs.Addr(), port)}
	switch c.Type {
	case "http", "https":
		if !strings.HasPrefix(c.Path, "/") {
			bad(f+".path", "%q; want an absolute path", c.Path)
		}
		for _, s := range c.ExpectStatus {
			if s < 100 || s > 599 {
				bad(f+".expect-status", "%d; want HTTP status codes 100..599", s)
			}
		}
		if c.BodyMatch != "" {
			re, err := regexp.Compile(c.BodyMatch)
			if err != nil {
				bad(f+".body-match", "%q: %v", c.BodyMatch, err)
			}
			cs.body = re
		}
	case "nfs":
		if c.NFSVersion < 2 || c.NFSVersion > 4 {
			bad(f+".nfs-version", "%d; want 2, 3 or 4", c.NFSVersion)
		}
	case "exec":
		if len(c.Command) == 0 || c.Command[0] == "" {
			bad(f+".command", "empty; want the program and its arguments")
		}
	}
	if c.Type != "http" && c.Type != "https" && (len(c.ExpectStatus) > 0 || c.BodyMatch != "" || c.Host != "") {
		bad(f+".type", "%s check with http settings (expect-status, body-match, host)", c.Type)
	}
	if c.Type != "mysql" && (c.User != "" || c.Password != "") {
		bad(f+".user", "set on a %s check; only mysql uses it", c.Type)
	}
	if c.Type != "exec" && len(c.Command) > 0 {
		bad(f+".command", "set on a %s check; only exec uses it", c.Type)
	}
	cs.hcfg = health.Config{Interval: c.Interval, Timeout: c.Timeout, Rise: c.Rise, Fall: c.Fall, InitiallyDown: c.InitiallyDown}
	return cs, ok
}
