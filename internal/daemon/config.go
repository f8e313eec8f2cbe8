package daemon

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/replicad/replicad/fence"
	"github.com/replicad/replicad/internal/bytesize"
	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/lvs"
	"github.com/replicad/replicad/nbd"
	"github.com/replicad/replicad/replication"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/meta"
	"github.com/replicad/replicad/replication/uuid"
	"github.com/replicad/replicad/replication/wire"
)

// Config is replicad's whole configuration.
type Config struct {
	Node    NodeConfig     `mapstructure:"node"`
	Control ControlConfig  `mapstructure:"control"`
	Metrics MetricsConfig  `mapstructure:"metrics"`
	Log     LogConfig      `mapstructure:"log"`
	NBD     NBDConfig      `mapstructure:"nbd"`
	Cluster ClusterConfig  `mapstructure:"cluster"`
	DLM     DLMConfig      `mapstructure:"dlm"`
	Volumes []VolumeConfig `mapstructure:"volumes"`
	// Fence is the fence section; nil means fencing is not configured.
	// The loader decodes it with fence.Decode, not with the rest of the
	// file, so that each device starts from fence.DefaultDevice and
	// durations need units (hence no mapstructure key here).
	Fence *fence.Config `mapstructure:"-"`
	// LVS is the load balancer (docs/lvs.md); nil (no lvs section)
	// disables it. The loader decodes it with lvs.DecodeConfig, like
	// `repctl lvs restore` does.
	LVS *lvs.Config `mapstructure:"-"`
}

// ClusterConfig lists the nodes volumes replicate between.
type ClusterConfig struct {
	// Secret is the shared secret peers authenticate with (at least 16
	// bytes); SecretFile reads it from a file instead (preferred).
	Secret     string `mapstructure:"secret"`
	SecretFile string `mapstructure:"secret-file"`
	// Listen is where this node accepts replication connections
	// (tcp://HOST:PORT); default: its own address from Nodes.
	Listen string `mapstructure:"listen"`
	// Nodes are every node of the cluster, this one included.
	Nodes []ClusterNode `mapstructure:"nodes"`
	// TLS wraps peer connections in mutual TLS (the shared-secret
	// handshake still runs inside): each node's certificate must be issued
	// by CA and valid for the node's name.
	TLS ClusterTLS `mapstructure:"tls"`
}

// ClusterTLS is the certificate, key and CA for mutual TLS between nodes.
type ClusterTLS struct {
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
	CA   string `mapstructure:"ca"`
}

// ClusterNode is one node of the cluster.
type ClusterNode struct {
	Name string `mapstructure:"name"`
	ID   uint32 `mapstructure:"id"`
	// Address is host:port of the node's replication endpoint.
	Address string `mapstructure:"address"`
	// DLMAddress is host:port of the node's DLM peer endpoint (required
	// for every node when dlm.enabled is set).
	DLMAddress string `mapstructure:"dlm-address"`
}

// ReplicationConfig is a volume's replication.
type ReplicationConfig struct {
	// Peers are the names of the other nodes holding the volume; empty
	// means the volume is standalone.
	Peers []string `mapstructure:"peers"`
	// Protocol is A, B or C (default C).
	Protocol string `mapstructure:"protocol"`
	// Split-brain recovery policies (default: disconnect).
	After0Pri string `mapstructure:"after-sb-0pri"`
	After1Pri string `mapstructure:"after-sb-1pri"`
	After2Pri string `mapstructure:"after-sb-2pri"`
	// AllowTwoPrimaries permits dual-primary operation.
	AllowTwoPrimaries bool `mapstructure:"allow-two-primaries"`
	// SplitBrainHandler is a shell command run on an unresolved split brain.
	SplitBrainHandler string `mapstructure:"split-brain-handler"`
	// Quorum is off (default) or majority: a node that reaches at most
	// half of the volume's nodes cannot be promoted, and a primary in that
	// state stops writing (OnNoQuorum: suspend-io, the default, or
	// io-error).
	Quorum     string `mapstructure:"quorum"`
	OnNoQuorum string `mapstructure:"on-no-quorum"`
	// Fencing is dont-care (default), resource-only or
	// resource-and-stonith (I/O freezes until the lost peer is fenced).
	Fencing string `mapstructure:"fencing"`
	// FencePeerHandler is the command that outdates or fences a lost peer
	// (DRBD's fence-peer exit codes); default `repctl fence peer`, which
	// fences through this node's fence devices.
	FencePeerHandler string `mapstructure:"fence-peer-handler"`
	// ResyncRate caps the resync in bytes per second (0: no cap).
	ResyncRate int64 `mapstructure:"resync-rate"`
	// ResyncDelayTarget: the resync window grows while resync data is
	// acknowledged within this, and shrinks when application I/O slows it
	// (default 50ms).
	ResyncDelayTarget time.Duration `mapstructure:"resync-delay-target"`
	// ResyncChecksums makes resyncs compare block digests first and send
	// only blocks that differ (good after a crash, when most AL extents are
	// equal; costs a read on both sides).
	ResyncChecksums bool `mapstructure:"resync-checksums"`
	// Compression of data on the link: none (default), s2 (fast links) or
	// zstd (slow links).
	Compression string `mapstructure:"compression"`
	// Timeout and KoCount: a peer that leaves a write unacknowledged for
	// ko-count × timeout is disconnected (defaults 6s and 7; 0 disables).
	Timeout time.Duration `mapstructure:"timeout"`
	KoCount int           `mapstructure:"ko-count"`
	// PingInterval, PingTimeout and ConnectInterval tune the link.
	PingInterval    time.Duration `mapstructure:"ping-interval"`
	PingTimeout     time.Duration `mapstructure:"ping-timeout"`
	ConnectInterval time.Duration `mapstructure:"connect-interval"`
}

// NodeConfig identifies this node.
type NodeConfig struct {
	// Name defaults to the host name.
	Name string `mapstructure:"name"`
	// ID is the node id (0..31) stored in metadata and used by peers.
	ID uint32 `mapstructure:"id"`
	// MaxProcs bounds the CPUs that run the daemon's Go code at once
	// (GOMAXPROCS; blocking system calls such as a volume's pwrite do
	// not count). 0: half the CPUs available, at least one (see
	// MaxProcs); the GOMAXPROCS environment variable overrides both.
	MaxProcs int `mapstructure:"max-procs"`
}

// MaxProcs is the GOMAXPROCS for the daemon: the max-procs setting if
// positive, else half of avail (the CPUs the Go runtime found, container
// limits included), at least one; 0 when the GOMAXPROCS environment
// variable is set (the runtime has applied it: leave it). The daemon
// serves consumers on its own host (NBD clients, the kernel's nbd
// devices and the filesystems on them, DLM users): with all CPUs its
// runtime's spinning threads take CPU time those need, which on two CPUs
// cost a fifth of 1 MiB write throughput (docs/benchmarks.md, NBD).
func MaxProcs(setting int, envSet bool, avail int) int {
	switch {
	case envSet:
		return 0
	case setting > 0:
		return setting
	}
	return max(1, avail/2)
}

// ControlConfig is the control socket.
type ControlConfig struct {
	Socket string `mapstructure:"socket"`
}

// MetricsConfig is the Prometheus endpoint.
type MetricsConfig struct {
	// Listen is host:port for /metrics; empty disables it.
	Listen string `mapstructure:"listen"`
}

// LogConfig sets up slog.
type LogConfig struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // text or json
}

// NBDConfig is the NBD server's listeners and tuning.
type NBDConfig struct {
	// Listen holds tcp://HOST:PORT and unix:///PATH addresses.
	Listen           []string      `mapstructure:"listen"`
	MaxPayload       uint32        `mapstructure:"max-payload"`
	MaxInflight      int           `mapstructure:"max-inflight"`
	HandshakeTimeout time.Duration `mapstructure:"handshake-timeout"`
	TLS              TLSConfig     `mapstructure:"tls"`
}

// TLSConfig enables STARTTLS with X.509 certificates.
type TLSConfig struct {
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
	// ClientCA, if set, requires client certificates signed by it.
	ClientCA string `mapstructure:"client-ca"`
	// Require refuses clients that do not upgrade to TLS.
	Require bool `mapstructure:"require"`
}

// VolumeConfig is one volume.
type VolumeConfig struct {
	Name        string `mapstructure:"name"`
	Description string `mapstructure:"description"`
	// Device is the backing file or block device.
	Device string `mapstructure:"device"`
	// Meta is "internal" (default: at the end of Device) or the path of an
	// external metadata file or device.
	Meta string `mapstructure:"meta"`
	// Size, if set and Device does not exist, creates Device as a sparse
	// file of this size at create-md.
	Size     int64 `mapstructure:"size"`
	ReadOnly bool  `mapstructure:"read-only"`
	// Replication configures peers; absent means standalone.
	Replication ReplicationConfig `mapstructure:"replication"`
	// Geometry is fixed at create-md.
	meta.Geometry `mapstructure:",squash"`
}

// Replicated reports whether the volume has peers.
func (v VolumeConfig) Replicated() bool { return len(v.Replication.Peers) > 0 }

// MetaInternal is VolumeConfig.Meta's default.
const MetaInternal = "internal"

// DefaultConfig returns the configuration used for everything a file does
// not say.
func DefaultConfig() Config {
	nc := nbd.DefaultConfig()
	return Config{
		Control: ControlConfig{Socket: control.DefaultSocket},
		Metrics: MetricsConfig{Listen: "127.0.0.1:9727"},
		Log:     LogConfig{Level: "info", Format: "text"},
		NBD: NBDConfig{
			Listen:           []string{"tcp://0.0.0.0:10809"},
			MaxPayload:       nc.MaxPayload,
			MaxInflight:      nc.MaxInflight,
			HandshakeTimeout: nc.HandshakeTimeout,
		},
		DLM: DefaultDLM(),
	}
}

// DefaultVolume returns a volume's defaults (fill Name and Device).
func DefaultVolume() VolumeConfig {
	return VolumeConfig{Meta: MetaInternal, Geometry: meta.DefaultGeometry(), Replication: DefaultReplication()}
}

// DefaultReplication returns the replication defaults.
func DefaultReplication() ReplicationConfig {
	d := replication.DefaultReplicatorConfig()
	return ReplicationConfig{
		Protocol: "C", Fencing: "dont-care", Quorum: "off", OnNoQuorum: "suspend-io", After0Pri: d.Policies.After0Pri, After1Pri: d.Policies.After1Pri, After2Pri: d.Policies.After2Pri,
		PingInterval: d.PingInterval, PingTimeout: d.PingTimeout, ConnectInterval: d.ConnectInterval,
		Compression: "none", Timeout: d.Timeout, KoCount: d.KoCount,
	}
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate reports every problem, naming each field.
func (c *Config) Validate() error {
	var p []string
	add := func(field, format string, args ...any) {
		p = append(p, field+": "+fmt.Sprintf(format, args...))
	}
	if c.Node.ID > 31 {
		add("node.id", "%d; want 0..31", c.Node.ID)
	}
	if c.Node.MaxProcs < 0 {
		add("node.max-procs", "%d; want 0 (half the CPUs) or more", c.Node.MaxProcs)
	}
	if c.Control.Socket == "" {
		add("control.socket", "required")
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "%q; want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format", "%q; want text or json", c.Log.Format)
	}
	if len(c.NBD.Listen) == 0 {
		add("nbd.listen", "at least one tcp://HOST:PORT or unix:///PATH address is required")
	}
	for i, l := range c.NBD.Listen {
		if _, _, err := ParseListen(l); err != nil {
			add(fmt.Sprintf("nbd.listen[%d]", i), "%v", err)
		}
	}
	if err := c.NBD.serverConfig().Validate(); err != nil {
		add("nbd", "%v", strings.TrimPrefix(err.Error(), "nbd config: "))
	}
	t := c.NBD.TLS
	if (t.Cert == "") != (t.Key == "") {
		add("nbd.tls", "cert and key must be given together")
	}
	if t.Require && t.Cert == "" {
		add("nbd.tls.require", "set but nbd.tls.cert and nbd.tls.key are not")
	}
	if t.ClientCA != "" && t.Cert == "" {
		add("nbd.tls.client-ca", "set but nbd.tls.cert and nbd.tls.key are not")
	}
	p = append(p, c.validateCluster()...)
	p = append(p, c.validateDLM()...)
	seen := map[string]int{}
	devices := map[string]int{}
	for i, v := range c.Volumes {
		f := fmt.Sprintf("volumes[%d]", i)
		if v.Name != "" {
			f = fmt.Sprintf("volumes[%d] (%s)", i, v.Name)
		}
		if !validName.MatchString(v.Name) {
			add(f+".name", "%q is not a valid volume name (1-63 letters, digits, '.', '_' or '-', starting with a letter or digit)", v.Name)
		} else if j, dup := seen[v.Name]; dup {
			add(f+".name", "%q is also the name of volumes[%d]", v.Name, j)
		}
		seen[v.Name] = i
		if v.Device == "" {
			add(f+".device", "required (a file or block device path)")
		} else if j, dup := devices[v.Device]; dup {
			add(f+".device", "%s is also the device of volumes[%d]", v.Device, j)
		}
		devices[v.Device] = i
		if v.Meta == "" {
			add(f+".meta", "required: \"internal\" or a path")
		} else if v.Meta == v.Device {
			add(f+".meta", "the same path as device; use \"internal\" for metadata on the device")
		}
		if v.Size < 0 {
			add(f+".size", "%d; want a positive size such as 10GiB", v.Size)
		}
		if err := v.Geometry.Validate(); err != nil {
			add(f, "%v", strings.TrimPrefix(err.Error(), meta.ErrGeometry.Error()+": "))
		}
		p = append(p, c.validateReplication(f+".replication", v)...)
	}
	if c.Fence != nil {
		// fence.Config.Validate names its fields fence.…, one per line.
		if err := c.Fence.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				p = append(p, strings.TrimPrefix(line, fence.ErrInvalidConfig.Error()+": "))
			}
		}
	}
	p = append(p, c.lvsProblems()...)
	if len(p) > 0 {
		return fmt.Errorf("invalid configuration:\n  %s", strings.Join(p, "\n  "))
	}
	return nil
}

// ParseListen splits a listen address into network and address.
func ParseListen(s string) (network, addr string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("%q: %v", s, err)
	}
	switch u.Scheme {
	case "tcp":
		if u.Host == "" || u.Port() == "" {
			return "", "", fmt.Errorf("%q: want tcp://HOST:PORT", s)
		}
		return "tcp", u.Host, nil
	case "unix":
		if u.Path == "" || u.Host != "" {
			return "", "", fmt.Errorf("%q: want unix:///ABSOLUTE/PATH", s)
		}
		return "unix", u.Path, nil
	}
	return "", "", fmt.Errorf("%q: unsupported scheme %q (want tcp:// or unix://)", s, u.Scheme)
}

func (n NBDConfig) serverConfig() nbd.Config {
	return nbd.Config{MaxPayload: n.MaxPayload, MaxInflight: n.MaxInflight, HandshakeTimeout: n.HandshakeTimeout}
}

// sizeString is for messages.
func sizeString(n int64) string { return bytesize.Format(n) }

func (c *Config) validateCluster() []string {
	var p []string
	cl := c.Cluster
	if len(cl.Nodes) == 0 {
		return nil
	}
	names, ids := map[string]bool{}, map[uint32]bool{}
	self := false
	for i, n := range cl.Nodes {
		f := fmt.Sprintf("cluster.nodes[%d]", i)
		if !validName.MatchString(n.Name) {
			p = append(p, fmt.Sprintf("%s.name: %q is not a valid node name", f, n.Name))
		}
		if names[n.Name] {
			p = append(p, fmt.Sprintf("%s.name: %q appears twice", f, n.Name))
		}
		names[n.Name] = true
		if n.ID > 31 {
			p = append(p, fmt.Sprintf("%s.id: %d; want 0..31", f, n.ID))
		}
		if ids[n.ID] {
			p = append(p, fmt.Sprintf("%s.id: %d appears twice", f, n.ID))
		}
		ids[n.ID] = true
		if _, _, err := net.SplitHostPort(n.Address); err != nil {
			p = append(p, fmt.Sprintf("%s.address: %q: want HOST:PORT", f, n.Address))
		}
		if n.Name == c.Node.Name {
			self = true
			if n.ID != c.Node.ID {
				p = append(p, fmt.Sprintf("%s.id: %d, but node.id is %d for this node (%s)", f, n.ID, c.Node.ID, n.Name))
			}
		}
	}
	if !self {
		p = append(p, fmt.Sprintf("cluster.nodes: this node (node.name %q) is not in the list", c.Node.Name))
	}
	if cl.Secret == "" && cl.SecretFile == "" {
		p = append(p, "cluster: secret or secret-file is required to authenticate peers")
	}
	if cl.Secret != "" && cl.SecretFile != "" {
		p = append(p, "cluster: give secret or secret-file, not both")
	}
	if cl.Secret != "" && len(cl.Secret) < 16 {
		p = append(p, fmt.Sprintf("cluster.secret: %d bytes; want at least 16", len(cl.Secret)))
	}
	if t := cl.TLS; t.Cert != "" || t.Key != "" || t.CA != "" {
		if t.Cert == "" || t.Key == "" || t.CA == "" {
			p = append(p, "cluster.tls: cert, key and ca are needed together")
		}
	}
	if cl.Listen != "" {
		if network, _, err := ParseListen(cl.Listen); err != nil || network != "tcp" {
			p = append(p, fmt.Sprintf("cluster.listen: %q: want tcp://HOST:PORT", cl.Listen))
		}
	}
	return p
}

func (c *Config) validateReplication(f string, v VolumeConfig) []string {
	var p []string
	r := v.Replication
	if !v.Replicated() {
		return nil
	}
	if len(c.Cluster.Nodes) == 0 {
		return []string{f + ".peers: set, but cluster.nodes is empty"}
	}
	known := map[string]bool{}
	for _, n := range c.Cluster.Nodes {
		known[n.Name] = true
	}
	for i, peer := range r.Peers {
		switch {
		case peer == c.Node.Name:
			p = append(p, fmt.Sprintf("%s.peers[%d]: %q is this node", f, i, peer))
		case !known[peer]:
			p = append(p, fmt.Sprintf("%s.peers[%d]: %q is not in cluster.nodes", f, i, peer))
		}
	}
	if len(r.Peers) > v.MaxPeers {
		p = append(p, fmt.Sprintf("%s.peers: %d peers but max-peers is %d", f, len(r.Peers), v.MaxPeers))
	}
	switch r.Protocol {
	case "A", "B", "C":
	default:
		p = append(p, fmt.Sprintf("%s.protocol: %q; want A, B or C", f, r.Protocol))
	}
	if r.AllowTwoPrimaries && r.Protocol != "C" {
		p = append(p, fmt.Sprintf("%s.allow-two-primaries needs protocol C (protocol is %q)", f, r.Protocol))
	}
	pol := uuid.Policies{After0Pri: r.After0Pri, After1Pri: r.After1Pri, After2Pri: r.After2Pri}
	if err := pol.Validate(); err != nil {
		p = append(p, fmt.Sprintf("%s.%v", f, err))
	}
	if r.PingInterval <= 0 || r.PingTimeout <= 0 || r.ConnectInterval <= 0 {
		p = append(p, fmt.Sprintf("%s: ping-interval, ping-timeout and connect-interval must be positive durations", f))
	}
	if _, err := engine.ParseQuorum(r.Quorum); err != nil {
		p = append(p, fmt.Sprintf("%s.%v", f, err))
	}
	if _, err := engine.ParseOnNoQuorum(r.OnNoQuorum); err != nil {
		p = append(p, fmt.Sprintf("%s.%v", f, err))
	}
	if _, err := engine.ParseFencePolicy(r.Fencing); err != nil {
		p = append(p, fmt.Sprintf("%s.%v", f, err))
	}
	if _, err := wire.ParseCompression(r.Compression); err != nil {
		p = append(p, fmt.Sprintf("%s.%v", f, err))
	}
	if r.KoCount < 0 || r.Timeout < 0 {
		p = append(p, fmt.Sprintf("%s: timeout and ko-count must not be negative", f))
	}
	if r.ResyncRate < 0 {
		p = append(p, fmt.Sprintf("%s.resync-rate: %d; want bytes per second, 0 for no cap", f, r.ResyncRate))
	}
	return p
}
