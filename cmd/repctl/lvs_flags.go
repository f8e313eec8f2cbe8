package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/replicad/replicad/lvs"
)

// The flags of the lvs edit commands. Each command applies only the flags
// that were given onto the configuration it starts from, so an edit
// changes just what the operator named; the daemon validates the result.

// checkFlags are the health-check options.
type checkFlags struct {
	typ, path, host, bodyMatch, serverName, user, password, command string
	interval, timeout                                               time.Duration
	rise, fall, port, nfsVersion                                    int
	initiallyDown, tlsVerify                                        bool
	expectStatus                                                    []int
}

func (c *checkFlags) register(fs *pflag.FlagSet, rs bool) {
	types := "none, tcp, http, https, mysql, nfs or exec"
	if rs {
		types += "; inherit drops the real server's own check (the service's applies)"
	}
	fs.StringVar(&c.typ, "check", "", "health check: "+types)
	fs.DurationVar(&c.interval, "interval", 0, "check every (default 5s)")
	fs.DurationVar(&c.timeout, "timeout", 0, "a check fails after (default 3s, at most --interval)")
	fs.IntVar(&c.rise, "rise", 0, "successes that bring a server up (default 2)")
	fs.IntVar(&c.fall, "fall", 0, "failures that take a server down (default 3)")
	fs.BoolVar(&c.initiallyDown, "initially-down", false, "no traffic until the first --rise successes")
	fs.IntVar(&c.port, "check-port", 0, "port to check (default the real server's)")
	fs.StringVar(&c.path, "path", "", "http(s): path to GET (default /)")
	fs.StringVar(&c.host, "host", "", "http(s): Host header")
	fs.IntSliceVar(&c.expectStatus, "expect-status", nil, "http(s): accepted status codes (default any 2xx or 3xx)")
	fs.StringVar(&c.bodyMatch, "body-match", "", "http(s): regular expression the body must match")
	fs.BoolVar(&c.tlsVerify, "tls-verify", false, "https: verify the certificate")
	fs.StringVar(&c.serverName, "server-name", "", "https: SNI and verification name")
	fs.StringVar(&c.user, "user", "", "mysql: log in as (default: replicad_check, access denied counts as up)")
	fs.StringVar(&c.password, "password", "", "mysql: password (visible in ps; the config file is the safer place)")
	fs.IntVar(&c.nfsVersion, "nfs-version", 0, "nfs: program version of the NULL call (default 4)")
	fs.StringVar(&c.command, "command", "", "exec: command and arguments, split at spaces; exit 0 = healthy")
}

var checkFlagNames = []string{"check", "interval", "timeout", "rise", "fall", "initially-down", "check-port", "path", "host",
	"expect-status", "body-match", "tls-verify", "server-name", "user", "password", "nfs-version", "command"}

// given reports whether any check flag was set.
func (c *checkFlags) given(fs *pflag.FlagSet) bool {
	for _, n := range checkFlagNames {
		if fs.Changed(n) {
			return true
		}
	}
	return false
}

func (c *checkFlags) apply(fs *pflag.FlagSet, cc *lvs.CheckConfig) {
	set := func(name string, f func()) {
		if fs.Changed(name) {
			f()
		}
	}
	set("check", func() { cc.Type = c.typ })
	set("interval", func() { cc.Interval = c.interval })
	set("timeout", func() { cc.Timeout = c.timeout })
	set("rise", func() { cc.Rise = c.rise })
	set("fall", func() { cc.Fall = c.fall })
	set("initially-down", func() { cc.InitiallyDown = c.initiallyDown })
	set("check-port", func() { cc.Port = c.port })
	set("path", func() { cc.Path = c.path })
	set("host", func() { cc.Host = c.host })
	set("expect-status", func() { cc.ExpectStatus = c.expectStatus })
	set("body-match", func() { cc.BodyMatch = c.bodyMatch })
	set("tls-verify", func() { cc.TLSVerify = c.tlsVerify })
	set("server-name", func() { cc.ServerName = c.serverName })
	set("user", func() { cc.User = c.user })
	set("password", func() { cc.Password = c.password })
	set("nfs-version", func() { cc.NFSVersion = c.nfsVersion })
	set("command", func() { cc.Command = strings.Fields(c.command) })
}

// serviceFlags are a virtual service's options.
type serviceFlags struct {
	address, protocol, family, scheduler, forward, persistence, onFailure, sorry string
	fwmark                                                                       uint32
	check                                                                        checkFlags
}

func (s *serviceFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&s.address, "address", "", "VIP:PORT ([v6]:PORT) of the service")
	fs.StringVar(&s.protocol, "protocol", "", "tcp (default) or udp")
	fs.Uint32Var(&s.fwmark, "fwmark", 0, "firewall mark instead of an address")
	fs.StringVar(&s.family, "family", "", "ipv4 (default) or ipv6, for --fwmark")
	fs.StringVar(&s.scheduler, "scheduler", "", "rr wrr lc wlc sed nq sh dh lblc lblcr mh random (default wrr; nftables runs rr wrr sh dh random)")
	fs.StringVar(&s.forward, "forward", "", "default forwarding of the real servers: nat (default), dr or tunnel")
	fs.StringVar(&s.persistence, "persistence", "", "keep a client on one server: TIMEOUT[/PREFIX-LENGTH] (300s/24); 0 turns it off")
	fs.StringVar(&s.onFailure, "on-failure", "", "a down server is quiesced (quiesce, default: weight 0) or removed (remove)")
	fs.StringVar(&s.sorry, "sorry", "", "ADDRESS:PORT that takes connections while no real server can (\"\" for none)")
	s.check.register(fs, false)
}

func (s *serviceFlags) apply(fs *pflag.FlagSet, sc *lvs.ServiceConfig) error {
	if fs.Changed("address") {
		sc.Address, sc.FWMark, sc.Family = s.address, 0, ""
	}
	if fs.Changed("fwmark") {
		sc.FWMark, sc.Address = s.fwmark, ""
	}
	for _, f := range []struct {
		name string
		dst  *string
		val  string
	}{{"protocol", &sc.Protocol, s.protocol}, {"family", &sc.Family, s.family}, {"scheduler", &sc.Scheduler, s.scheduler},
		{"forward", &sc.Forward, s.forward}, {"on-failure", &sc.OnFailure, s.onFailure}, {"sorry", &sc.SorryServer, s.sorry}} {
		if fs.Changed(f.name) {
			*f.dst = f.val
		}
	}
	if fs.Changed("persistence") {
		p, err := parsePersistence(s.persistence)
		if err != nil {
			return err
		}
		sc.Persistence = p
	}
	s.check.apply(fs, &sc.Check)
	return nil
}

// parsePersistence reads TIMEOUT[/PREFIX-LENGTH].
func parsePersistence(s string) (lvs.PersistenceConfig, error) {
	if s == "0" || s == "off" {
		return lvs.PersistenceConfig{}, nil
	}
	t, prefix, hasPrefix := strings.Cut(s, "/")
	var p lvs.PersistenceConfig
	var err error
	if p.Timeout, err = time.ParseDuration(t); err != nil {
		return p, usageError{fmt.Errorf("--persistence %q: want TIMEOUT[/PREFIX-LENGTH] such as 300s or 300s/24", s)}
	}
	if hasPrefix {
		if p.PrefixLength, err = strconv.Atoi(prefix); err != nil {
			return p, usageError{fmt.Errorf("--persistence %q: prefix length %q is not a number", s, prefix)}
		}
	}
	return p, nil
}

// rsFlags are a real server's options.
type rsFlags struct {
	weight, tunnelPort  int
	forward, tunnelType string
	check               checkFlags
}

func (r *rsFlags) register(fs *pflag.FlagSet) {
	fs.IntVar(&r.weight, "weight", 1, "0..65535; 0 drains (no new connections)")
	fs.StringVar(&r.forward, "forward", "", "nat, dr or tunnel (default the service's)")
	fs.StringVar(&r.tunnelType, "tunnel-type", "", "tunnel: ipip (default), gue or gre")
	fs.IntVar(&r.tunnelPort, "tunnel-port", 0, "tunnel gue: UDP port")
	r.check.register(fs, true)
}

// apply sets the given flags on rc. A real server's own check starts as a
// copy of the service's, so that --check-port alone changes only the port.
func (r *rsFlags) apply(fs *pflag.FlagSet, sc lvs.ServiceConfig, rc *lvs.RealServerConfig) {
	if fs.Changed("weight") {
		w := r.weight
		rc.Weight = &w
	}
	if fs.Changed("forward") {
		rc.Forward = r.forward
	}
	if fs.Changed("tunnel-type") {
		rc.TunnelType = r.tunnelType
	}
	if fs.Changed("tunnel-port") {
		rc.TunnelPort = r.tunnelPort
	}
	switch {
	case fs.Changed("check") && r.check.typ == "inherit":
		rc.Check = nil
	case r.check.given(fs):
		if rc.Check == nil {
			c := sc.Check
			c.ExpectStatus = append([]int(nil), c.ExpectStatus...)
			c.Command = append([]string(nil), c.Command...)
			rc.Check = &c
		}
		r.check.apply(fs, rc.Check)
	}
}

// parseRSSpec reads --rs ADDRESS[:PORT][,weight=W][,forward=F][,tunnel-type=T][,tunnel-port=P].
func parseRSSpec(s string) (lvs.RealServerConfig, error) {
	parts := strings.Split(s, ",")
	rc := lvs.RealServerConfig{Address: parts[0]}
	bad := func(format string, a ...any) error {
		return usageError{fmt.Errorf("--rs %q: "+format+" (want ADDRESS[:PORT][,weight=W][,forward=F][,tunnel-type=T][,tunnel-port=P])", append([]any{s}, a...)...)}
	}
	if rc.Address == "" {
		return rc, bad("no address")
	}
	for _, kv := range parts[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return rc, bad("%q is not KEY=VALUE", kv)
		}
		switch k {
		case "weight", "tunnel-port":
			n, err := strconv.Atoi(v)
			if err != nil {
				return rc, bad("%s %q is not a number", k, v)
			}
			if k == "weight" {
				rc.Weight = &n
			} else {
				rc.TunnelPort = n
			}
		case "forward":
			rc.Forward = v
		case "tunnel-type":
			rc.TunnelType = v
		default:
			return rc, bad("unknown key %q", k)
		}
	}
	return rc, nil
}
