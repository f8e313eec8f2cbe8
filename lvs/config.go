package lvs

import (
	"time"

	"github.com/replicad/replicad/lvs/nftrules"
)

// Config is the lvs section of replicad's configuration. Durations are
// written as Go durations ("5s", "300ms") in YAML.
type Config struct {
	// Backend is "auto" (IPVS where ip_vs exists and can run every
	// service, else nftables), "ipvs" or "nftables".
	Backend string `mapstructure:"backend"`
	// NFTablesTable is the inet table replicad owns for the nftables
	// backend. Nothing outside it is touched.
	NFTablesTable string `mapstructure:"nftables-table"`
	// IPVSStateFile records which IPVS services replicad created, so that a
	// restart can delete the ones removed from the config while leaving
	// foreign services alone. Empty keeps the record in memory only (a
	// service removed from the config while replicad was down then
	// survives as if foreign).
	IPVSStateFile string `mapstructure:"ipvs-state-file"`
	// ResyncInterval is how often the kernel tables are re-read and
	// repaired even without a change.
	ResyncInterval time.Duration `mapstructure:"resync-interval"`
	// VIPs are the virtual addresses this node may own; the cluster
	// manager decides when (see VIP).
	VIPs []VIPConfig `mapstructure:"vips"`
	// Services are the virtual services.
	Services []ServiceConfig `mapstructure:"services"`
}

// VIPConfig is one virtual IP address.
type VIPConfig struct {
	Name      string `mapstructure:"name"`
	Address   string `mapstructure:"address"` // with prefix length: "10.0.0.100/24", "2001:db8::100/64"
	Interface string `mapstructure:"interface"`
	Label     string `mapstructure:"label"` // IPv4 only; must start with the interface name ("eth0:vip")
	// ARPCount gratuitous ARPs (IPv4) or unsolicited neighbour
	// advertisements (IPv6) are sent on Acquire, ARPInterval apart. 0
	// means the default; a negative count sends none.
	ARPCount    int           `mapstructure:"arp-count"`
	ARPInterval time.Duration `mapstructure:"arp-interval"`
	// MonitorInterval is how often Watch re-checks the address and link
	// besides reacting to netlink notifications.
	MonitorInterval time.Duration `mapstructure:"monitor-interval"`
}

// ServiceConfig is one virtual service. Either Address (with Protocol) or
// FWMark (with Family) identifies it.
type ServiceConfig struct {
	Name     string `mapstructure:"name"`
	Protocol string `mapstructure:"protocol"` // tcp (default) or udp
	Address  string `mapstructure:"address"`  // "10.0.0.100:3306", "[2001:db8::100]:2049"
	FWMark   uint32 `mapstructure:"fwmark"`
	Family   string `mapstructure:"family"` // ipv4 (default) or ipv6, for fwmark services
	// Scheduler is one of rr wrr lc wlc sed nq sh dh lblc lblcr mh random
	// (default wrr, which both backends run).
	Scheduler string `mapstructure:"scheduler"`
	// Forward is the default forwarding method of the real servers: nat
	// (default), dr or tunnel.
	Forward     string            `mapstructure:"forward"`
	Persistence PersistenceConfig `mapstructure:"persistence"`
	// OnFailure is quiesce (default: weight 0, established connections
	// stay) or remove.
	OnFailure string `mapstructure:"on-failure"`
	// SorryServer ("addr:port") takes new connections while no real
	// server can.
	SorryServer string `mapstructure:"sorry-server"`
	// Check is the health check of every real server unless the real
	// server has its own.
	Check       CheckConfig        `mapstructure:"check"`
	RealServers []RealServerConfig `mapstructure:"real-servers"`
}

// PersistenceConfig keeps a client on one real server.
type PersistenceConfig struct {
	Timeout time.Duration `mapstructure:"timeout"` // 0: off; whole seconds
	// PrefixLength groups clients by their address masked to this many
	// bits (ipvsadm -M). 0 means a single host (32 or 128).
	PrefixLength int `mapstructure:"prefix-length"`
}

// RealServerConfig is one real server.
type RealServerConfig struct {
	// Address is "addr:port" or just "addr" (the service's port; 0, i.e.
	// the client's destination port, for firewall-mark services).
	Address string `mapstructure:"address"`
	// Weight 0..65535; unset means 1; 0 quiesces (drain).
	Weight     *int   `mapstructure:"weight"`
	Forward    string `mapstructure:"forward"`     // overrides the service's
	TunnelType string `mapstructure:"tunnel-type"` // ipip (default), gue, gre
	TunnelPort int    `mapstructure:"tunnel-port"` // for gue
	// Check overrides the service's check for this server.
	Check *CheckConfig `mapstructure:"check"`
}

// CheckConfig is a health check. Zero timing fields take the defaults.
type CheckConfig struct {
	// Type is none (default), tcp, http, https, mysql, nfs or exec.
	Type     string        `mapstructure:"type"`
	Interval time.Duration `mapstructure:"interval"` // default 5s
	Timeout  time.Duration `mapstructure:"timeout"`  // default 3s, at most Interval
	Rise     int           `mapstructure:"rise"`     // default 2
	Fall     int           `mapstructure:"fall"`     // default 3
	// InitiallyDown gives a server no traffic until it has passed Rise
	// checks (keepalived's alpha). By default servers start Up.
	InitiallyDown bool `mapstructure:"initially-down"`
	// Port to check; default the real server's port.
	Port int `mapstructure:"port"`

	// http, https
	Path         string `mapstructure:"path"`          // default "/"
	Host         string `mapstructure:"host"`          // Host header (default the address)
	ExpectStatus []int  `mapstructure:"expect-status"` // default any 2xx or 3xx
	BodyMatch    string `mapstructure:"body-match"`    // regular expression the body must match
	TLSVerify    bool   `mapstructure:"tls-verify"`    // https: verify the certificate (default off)
	ServerName   string `mapstructure:"server-name"`   // https: SNI and verification name

	// mysql: log in as User. Without a user the check logs in as
	// "replicad_check" and also accepts "access denied" (the server is up
	// and authenticating). Completing the login keeps the server from
	// counting the probe as a handshake error (max_connect_errors).
	User     string `mapstructure:"user"`
	Password string `mapstructure:"password"`

	// nfs: the NFS program version the NULL call names (default 4).
	NFSVersion int `mapstructure:"nfs-version"`

	// exec: argv of a command; exit status 0 means healthy. It gets
	// REPLICAD_RS_ADDRESS, REPLICAD_RS_PORT and REPLICAD_SERVICE in its
	// environment and is killed (with its process group) at the timeout.
	Command []string `mapstructure:"command"`
}

// Defaults.
const (
	DefaultBackend         = "auto"
	DefaultScheduler       = "wrr"
	DefaultForward         = "nat"
	DefaultOnFailure       = "quiesce"
	DefaultResyncInterval  = 30 * time.Second
	DefaultARPCount        = 5
	DefaultARPInterval     = 500 * time.Millisecond
	DefaultMonitorInterval = 10 * time.Second
	DefaultCheckInterval   = 5 * time.Second
	DefaultCheckTimeout    = 3 * time.Second
	DefaultRise            = 2
	DefaultFall            = 3
	DefaultNFSVersion      = 4
	DefaultMySQLUser       = "replicad_check"
)

// DefaultConfig returns a configuration with no VIPs and no services.
func DefaultConfig() Config {
	return Config{
		Backend:        DefaultBackend,
		NFTablesTable:  nftrules.DefaultTable,
		ResyncInterval: DefaultResyncInterval,
	}
}

// withDefaults fills the zero timing fields of a check.
func (c CheckConfig) withDefaults() CheckConfig {
	if c.Type == "" {
		c.Type = "none"
	}
	if c.Interval == 0 {
		c.Interval = DefaultCheckInterval
	}
	if c.Timeout == 0 {
		c.Timeout = min(DefaultCheckTimeout, c.Interval)
	}
	if c.Rise == 0 {
		c.Rise = DefaultRise
	}
	if c.Fall == 0 {
		c.Fall = DefaultFall
	}
	if c.Path == "" {
		c.Path = "/"
	}
	if c.NFSVersion == 0 {
		c.NFSVersion = DefaultNFSVersion
	}
	return c
}

// withDefaults fills the zero fields of a VIP.
func (v VIPConfig) withDefaults() VIPConfig {
	if v.ARPCount == 0 {
		v.ARPCount = DefaultARPCount
	}
	if v.ARPInterval == 0 {
		v.ARPInterval = DefaultARPInterval
	}
	if v.MonitorInterval == 0 {
		v.MonitorInterval = DefaultMonitorInterval
	}
	return v
}
