package daemon

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/replicad/replicad/internal/bytesize"
	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/lvs"
	"github.com/replicad/replicad/nbd"
	"github.com/replicad/replicad/replication/meta"
)

// Config is replicad's whole configuration.
type Config struct {
	Node    NodeConfig     `mapstructure:"node"`
	Control ControlConfig  `mapstructure:"control"`
	Metrics MetricsConfig  `mapstructure:"metrics"`
	Log     LogConfig      `mapstructure:"log"`
	NBD     NBDConfig      `mapstructure:"nbd"`
	Volumes []VolumeConfig `mapstructure:"volumes"`
	// LVS is the load balancer (docs/lvs.md); nil (no lvs section)
	// disables it.
	LVS *lvs.Config `mapstructure:"lvs"`
}

// NodeConfig identifies this node.
type NodeConfig struct {
	// Name defaults to the host name.
	Name string `mapstructure:"name"`
	// ID is the node id (0..31) stored in metadata and used by peers.
	ID uint32 `mapstructure:"id"`
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
	// Geometry is fixed at create-md.
	meta.Geometry `mapstructure:",squash"`
}

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
	}
}

// DefaultVolume returns a volume's defaults (fill Name and Device).
func DefaultVolume() VolumeConfig {
	return VolumeConfig{Meta: MetaInternal, Geometry: meta.DefaultGeometry()}
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
