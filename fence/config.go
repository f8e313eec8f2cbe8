package fence

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/replicad/replicad/fence/agentproto"
	"github.com/replicad/replicad/fence/topology"
)

// Config is the fence section of replicad's configuration.
type Config struct {
	// HistoryPath is the append-only operation history file.
	HistoryPath string `mapstructure:"history-path"`
	// AgentPath lists the directories searched for an exec agent's command
	// when it is not an absolute path.
	AgentPath []string `mapstructure:"agent-path"`
	// PriorityDelay is waited before fencing a node that holds a primary,
	// so that in a two-node fence race the primary's holder wins.
	PriorityDelay time.Duration `mapstructure:"priority-delay"`
	// PeerAction is what the fence-peer adapter asks for: off or reboot.
	PeerAction string `mapstructure:"peer-action"`
	// MetadataTimeout bounds the metadata call made for each exec device
	// when the Fencer starts.
	MetadataTimeout time.Duration  `mapstructure:"metadata-timeout"`
	Devices         []DeviceConfig `mapstructure:"devices"`
	// Topology gives targets explicit levels. A target without an entry
	// gets one level per device that can fence it, in device order.
	Topology []TargetLevels `mapstructure:"topology"`
}

// DeviceConfig is one fence device.
type DeviceConfig struct {
	Name string `mapstructure:"name"`
	// Agent is "exec" (a fence-agents program) or "redfish" (native).
	Agent string `mapstructure:"agent"`
	// Command is the exec agent's program: a name found in AgentPath
	// (fence_ipmilan) or an absolute path.
	Command string `mapstructure:"command"`
	// Params are the exec agent's stdin arguments (ip, username,
	// password, lanplus, ...), checked against its metadata at start.
	Params map[string]string `mapstructure:"params"`
	// HostArgument names the exec agent argument that carries the port
	// ("port" by default, "plug", any agent parameter, or "none").
	HostArgument string        `mapstructure:"host-argument"`
	Redfish      RedfishConfig `mapstructure:"redfish"`
	// Hosts are nodes this device fences with the node name as port.
	Hosts []string `mapstructure:"hosts"`
	// HostMap entries are "node:port".
	HostMap []string `mapstructure:"host-map"`
	// Timeout bounds every agent call (power, status, monitor, list).
	Timeout time.Duration `mapstructure:"timeout"`
	// Retries is how many more times a failed off/on is tried.
	Retries       int           `mapstructure:"retries"`
	RetryInterval time.Duration `mapstructure:"retry-interval"`
	// DelayBase plus a random delay up to DelayMax is waited before the
	// device's first power call of an operation (pcmk_delay_base/max).
	DelayBase time.Duration `mapstructure:"delay-base"`
	DelayMax  time.Duration `mapstructure:"delay-max"`
	// VerifyTimeout bounds the wait for status to report off after off;
	// VerifyInterval spaces the status checks.
	VerifyTimeout  time.Duration `mapstructure:"verify-timeout"`
	VerifyInterval time.Duration `mapstructure:"verify-interval"`
}

// RedfishConfig configures the native Redfish agent.
type RedfishConfig struct {
	// Address is the BMC's base URL, https://host[:port].
	Address  string `mapstructure:"address"`
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"`
	// PasswordFile is read at start instead of Password.
	PasswordFile string `mapstructure:"password-file"`
	// System is the ComputerSystem path (/redfish/v1/Systems/1). Empty:
	// the port (plug) names the system by Id, or the BMC's only system.
	System string `mapstructure:"system"`
	// CAFile holds the PEM certificates that sign the BMC's certificate.
	// Without it the system roots are used.
	CAFile string `mapstructure:"ca-file"`
	// Insecure skips certificate verification. It must be explicit.
	Insecure bool `mapstructure:"insecure"`
}

// TargetLevels gives one target its levels, in order; each level lists
// devices that must all succeed.
type TargetLevels struct {
	Target string     `mapstructure:"target"`
	Levels [][]string `mapstructure:"levels"`
}

// Agent kinds.
const (
	AgentExec    = "exec"
	AgentRedfish = "redfish"
)

// DefaultConfig returns the configuration with no devices.
func DefaultConfig() Config {
	return Config{
		HistoryPath:     "/var/lib/replicad/fence/history.log",
		AgentPath:       []string{"/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"},
		PriorityDelay:   0,
		PeerAction:      "reboot",
		MetadataTimeout: 10 * time.Second,
	}
}

// DefaultDevice returns the defaults every device starts from.
func DefaultDevice() DeviceConfig {
	return DeviceConfig{
		Agent:          AgentExec,
		HostArgument:   "port",
		Timeout:        60 * time.Second,
		Retries:        2,
		RetryInterval:  time.Second,
		VerifyTimeout:  30 * time.Second,
		VerifyInterval: time.Second,
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// checkNodeName validates a node (target) name.
func checkNodeName(n string) error {
	if n == "" {
		return errors.New("empty node name")
	}
	if len(n) > 253 || !nameRE.MatchString(n) {
		return fmt.Errorf("node name %q: want letters, digits, '.', '-', '_' (at most 253)", n)
	}
	return nil
}

// Validate reports every problem, each naming its field, wrapped in
// ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: fence.%s: "+format, append([]any{ErrInvalidConfig, field}, args...)...))
	}
	if c.HistoryPath == "" || !filepath.IsAbs(c.HistoryPath) {
		bad("history-path", "%q; want an absolute file path", c.HistoryPath)
	}
	for i, p := range c.AgentPath {
		if !filepath.IsAbs(p) {
			bad(fmt.Sprintf("agent-path[%d]", i), "%q; want an absolute directory", p)
		}
	}
	if c.PriorityDelay < 0 || c.PriorityDelay > 10*time.Minute {
		bad("priority-delay", "%v; want 0s..10m", c.PriorityDelay)
	}
	if c.PeerAction != "off" && c.PeerAction != "reboot" {
		bad("peer-action", "%q; want off or reboot", c.PeerAction)
	}
	if c.MetadataTimeout < time.Second || c.MetadataTimeout > 5*time.Minute {
		bad("metadata-timeout", "%v; want 1s..5m", c.MetadataTimeout)
	}
	names := map[string]int{}
	for i, d := range c.Devices {
		f := fmt.Sprintf("devices[%d]", i)
		if d.Name != "" {
			f = fmt.Sprintf("devices[%d] (%s)", i, d.Name)
		}
		for _, e := range d.validate() {
			bad(f+"."+e.field, "%s", e.msg)
		}
		if d.Name == "" {
			continue
		}
		if j, dup := names[d.Name]; dup {
			bad(f+".name", "%q already names devices[%d]", d.Name, j)
		} else {
			names[d.Name] = i
		}
	}
	for _, p := range topology.Check(c.topologyDevices(), c.topologyRules()) {
		field := fmt.Sprintf("topology[%d]", p.Rule)
		switch {
		case p.Index >= 0:
			field += fmt.Sprintf(".levels[%d][%d]", p.Level, p.Index)
		case p.Level >= 0:
			field += fmt.Sprintf(".levels[%d]", p.Level)
		}
		bad(field, "%s", p.What)
	}
	for i, r := range c.Topology {
		if r.Target != "" {
			if err := checkNodeName(r.Target); err != nil {
				bad(fmt.Sprintf("topology[%d].target", i), "%v", err)
			}
		}
	}
	return errors.Join(errs...)
}

type fieldErr struct{ field, msg string }

func (d DeviceConfig) validate() []fieldErr {
	var errs []fieldErr
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldErr{field, fmt.Sprintf(format, args...)})
	}
	if d.Name == "" {
		bad("name", "empty; every device needs a name")
	} else if !nameRE.MatchString(d.Name) || len(d.Name) > 64 {
		bad("name", "%q; want letters, digits, '.', '-', '_' (at most 64)", d.Name)
	}
	switch d.Agent {
	case AgentExec:
		if d.Command == "" {
			bad("command", "empty; want a fence agent such as fence_ipmilan or an absolute path")
		} else if !filepath.IsAbs(d.Command) && strings.ContainsRune(d.Command, '/') {
			bad("command", "%q; want a program name or an absolute path", d.Command)
		}
		keys := make([]string, 0, len(d.Params))
		for k := range d.Params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch {
			case agentproto.CheckName(k) != nil:
				bad("params."+k, "%v", agentproto.CheckName(k))
			case agentproto.IsReserved(k):
				bad("params."+k, "set by replicad for each call; remove it (the port comes from hosts/host-map)")
			case agentproto.CheckValue(d.Params[k]) != nil:
				bad("params."+k, "%v", agentproto.CheckValue(d.Params[k]))
			}
		}
		if d.HostArgument == "" {
			bad("host-argument", "empty; want port, plug, another agent parameter, or none")
		} else if d.HostArgument != "none" && agentproto.CheckName(d.HostArgument) != nil {
			bad("host-argument", "%q is not a valid argument name", d.HostArgument)
		}
		if d.Redfish != (RedfishConfig{}) {
			bad("redfish", "set on an exec device; remove it or use agent: redfish")
		}
	case AgentRedfish:
		for _, e := range d.Redfish.validate() {
			bad("redfish."+e.field, "%s", e.msg)
		}
		if d.Command != "" || len(d.Params) != 0 {
			bad("command", "command and params are for exec devices; a redfish device takes redfish: settings")
		}
	case "":
		bad("agent", "empty; want exec or redfish")
	default:
		bad("agent", "unknown agent %q (want exec or redfish)", d.Agent)
	}
	if len(d.Hosts) == 0 && len(d.HostMap) == 0 {
		bad("hosts", "no hosts and no host-map; a device must name the nodes it can fence")
	}
	seen := map[string]string{}
	for i, h := range d.Hosts {
		if err := checkNodeName(h); err != nil {
			bad(fmt.Sprintf("hosts[%d]", i), "%v", err)
			continue
		}
		if _, dup := seen[h]; dup {
			bad(fmt.Sprintf("hosts[%d]", i), "%q listed twice", h)
		}
		seen[h] = "hosts"
	}
	for i, entry := range d.HostMap {
		node, port, ok := strings.Cut(entry, ":")
		f := fmt.Sprintf("host-map[%d]", i)
		switch {
		case !ok || port == "":
			bad(f, "%q; want node:port", entry)
		case checkNodeName(node) != nil:
			bad(f, "%v", checkNodeName(node))
		case agentproto.CheckValue(port) != nil:
			bad(f, "port %v", agentproto.CheckValue(port))
		default:
			if where, dup := seen[node]; dup {
				bad(f, "node %q is already in %s", node, where)
			}
			seen[node] = "host-map"
		}
	}
	if d.Timeout < time.Second || d.Timeout > 10*time.Minute {
		bad("timeout", "%v; want 1s..10m", d.Timeout)
	}
	if d.Retries < 0 || d.Retries > 10 {
		bad("retries", "%d; want 0..10", d.Retries)
	}
	if d.RetryInterval < 0 || d.RetryInterval > 5*time.Minute {
		bad("retry-interval", "%v; want 0s..5m", d.RetryInterval)
	}
	if d.DelayBase < 0 || d.DelayBase > 10*time.Minute {
		bad("delay-base", "%v; want 0s..10m", d.DelayBase)
	}
	if d.DelayMax < 0 || d.DelayMax > 10*time.Minute {
		bad("delay-max", "%v; want 0s..10m", d.DelayMax)
	}
	if d.VerifyTimeout < time.Second || d.VerifyTimeout > 10*time.Minute {
		bad("verify-timeout", "%v; want 1s..10m", d.VerifyTimeout)
	}
	if d.VerifyInterval < 10*time.Millisecond || d.VerifyInterval > d.VerifyTimeout {
		bad("verify-interval", "%v; want 10ms..verify-timeout (%v)", d.VerifyInterval, d.VerifyTimeout)
	}
	return errs
}

func (r RedfishConfig) validate() []fieldErr {
	var errs []fieldErr
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldErr{field, fmt.Sprintf(format, args...)})
	}
	u, err := url.Parse(r.Address)
	switch {
	case r.Address == "":
		bad("address", "empty; want https://host[:port]")
	case err != nil:
		bad("address", "%q: %v", r.Address, err)
	case u.Scheme != "https":
		bad("address", "%q; want an https:// URL (Redfish carries credentials)", r.Address)
	case u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil:
		bad("address", "%q; want only https://host[:port], no path, query or user", r.Address)
	}
	if r.Username == "" {
		bad("username", "empty")
	}
	switch {
	case r.Password == "" && r.PasswordFile == "":
		bad("password", "empty; set password or password-file")
	case r.Password != "" && r.PasswordFile != "":
		bad("password-file", "set together with password; keep one")
	case r.PasswordFile != "" && !filepath.IsAbs(r.PasswordFile):
		bad("password-file", "%q; want an absolute path", r.PasswordFile)
	}
	if r.System != "" && !strings.HasPrefix(r.System, "/redfish/v1/") {
		bad("system", "%q; want a path such as /redfish/v1/Systems/1", r.System)
	}
	if r.CAFile != "" && r.Insecure {
		bad("insecure", "set together with ca-file; verify with the CA or skip verification, not both")
	}
	if r.CAFile != "" && !filepath.IsAbs(r.CAFile) {
		bad("ca-file", "%q; want an absolute path", r.CAFile)
	}
	return errs
}

// hostMap parses HostMap; call it on validated configuration.
func (d DeviceConfig) hostMap() map[string]string {
	m := map[string]string{}
	for _, e := range d.HostMap {
		if node, port, ok := strings.Cut(e, ":"); ok {
			m[node] = port
		}
	}
	return m
}

func (c Config) topologyDevices() []topology.Device {
	out := make([]topology.Device, 0, len(c.Devices))
	for _, d := range c.Devices {
		out = append(out, topology.Device{Name: d.Name, Hosts: d.Hosts, Ports: d.hostMap()})
	}
	return out
}

func (c Config) topologyRules() []topology.Rule {
	out := make([]topology.Rule, 0, len(c.Topology))
	for _, t := range c.Topology {
		out = append(out, topology.Rule{Target: t.Target, Levels: t.Levels})
	}
	return out
}
