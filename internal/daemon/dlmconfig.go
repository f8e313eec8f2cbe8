package daemon

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"time"

	"github.com/replicad/replicad/dlm"
)

// DLMConfig is the distributed lock manager's section (docs/dlm.md). The
// DLM's nodes are cluster.nodes: each needs a dlm-address, and an id from
// 1 (the DLM, like corosync, does not use node id 0).
type DLMConfig struct {
	// Enabled runs the DLM on this node.
	Enabled bool `mapstructure:"enabled"`
	// Listen is where this node accepts DLM peers (tcp://HOST:PORT);
	// default: its own dlm-address from cluster.nodes.
	Listen string `mapstructure:"listen"`
	// Socket is the node-local client socket (repctl lock, programs
	// using dlm/client), created with mode 0660.
	Socket string `mapstructure:"socket"`
	// Lockspaces are joined when replicad starts.
	Lockspaces []DLMLockspace `mapstructure:"lockspaces"`
	// TwoNode gives quorum to either node of a two-node cluster alone
	// (corosync's two_node); it relies on fencing to settle who survives.
	TwoNode bool `mapstructure:"two-node"`
	// HeartbeatInterval is how often an idle peer connection carries a
	// heartbeat; DeadTimeout how long a silent peer has until it counts
	// as failed (and must be fenced before its locks are recovered).
	HeartbeatInterval time.Duration `mapstructure:"heartbeat-interval"`
	DeadTimeout       time.Duration `mapstructure:"dead-timeout"`
}

// DLMLockspace is a lockspace joined at startup.
type DLMLockspace struct {
	Name string `mapstructure:"name"`
	// LVBLen is the lock value block length: 32 (default) or 64 bytes,
	// the same on every node.
	LVBLen int `mapstructure:"lvb-len"`
}

// DefaultDLMSocket is dlm.socket's default.
const DefaultDLMSocket = "/run/replicad/dlm.sock"

// DefaultDLM returns the DLM section's defaults (disabled).
func DefaultDLM() DLMConfig {
	d := dlm.DefaultConfig()
	return DLMConfig{Socket: DefaultDLMSocket, HeartbeatInterval: d.HeartbeatInterval, DeadTimeout: d.DeadTimeout}
}

// validLockspace: lockspace names end up in URL paths and logs; GFS2's
// are "cluster:fs".
var validLockspace = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

func (c *Config) validateDLM() []string {
	var p []string
	add := func(field, format string, args ...any) {
		p = append(p, field+": "+fmt.Sprintf(format, args...))
	}
	d := c.DLM
	if !d.Enabled {
		if len(d.Lockspaces) > 0 {
			add("dlm.lockspaces", "set, but dlm.enabled is false")
		}
		return p
	}
	if len(c.Cluster.Nodes) == 0 {
		add("dlm.enabled", "the DLM runs between cluster.nodes, which is empty (list every node with its id, address and dlm-address, and set cluster.secret-file)")
		return p
	}
	for i, n := range c.Cluster.Nodes {
		f := fmt.Sprintf("cluster.nodes[%d]", i)
		if n.ID == 0 {
			add(f+".id", "0; the DLM numbers nodes from 1 (as corosync does): give every node an id from 1 to 31 to enable it")
		}
		if n.DLMAddress == "" {
			add(f+".dlm-address", "required with dlm.enabled: HOST:PORT of %s's DLM peer endpoint, e.g. 10.0.0.2:7790", n.Name)
		} else if _, _, err := net.SplitHostPort(n.DLMAddress); err != nil {
			add(f+".dlm-address", "%q: want HOST:PORT", n.DLMAddress)
		} else if n.DLMAddress == n.Address {
			add(f+".dlm-address", "%q is also the node's replication address; give the DLM its own port", n.DLMAddress)
		}
	}
	if d.Listen != "" {
		if network, _, err := ParseListen(d.Listen); err != nil || network != "tcp" {
			add("dlm.listen", "%q: want tcp://HOST:PORT", d.Listen)
		}
	}
	if d.Socket == "" || !filepath.IsAbs(d.Socket) {
		add("dlm.socket", "%q: want an absolute path such as %s", d.Socket, DefaultDLMSocket)
	} else if d.Socket == c.Control.Socket {
		add("dlm.socket", "%s is also control.socket", d.Socket)
	}
	if d.TwoNode && len(c.Cluster.Nodes) != 2 {
		add("dlm.two-node", "set, but cluster.nodes has %d nodes; it needs exactly 2", len(c.Cluster.Nodes))
	}
	if d.HeartbeatInterval <= 0 {
		add("dlm.heartbeat-interval", "%v; want a positive duration such as 500ms", d.HeartbeatInterval)
	}
	if d.DeadTimeout < 2*d.HeartbeatInterval {
		add("dlm.dead-timeout", "%v; want at least twice dlm.heartbeat-interval (%v)", d.DeadTimeout, d.HeartbeatInterval)
	}
	seen := map[string]int{}
	for i, ls := range d.Lockspaces {
		f := fmt.Sprintf("dlm.lockspaces[%d]", i)
		if !validLockspace.MatchString(ls.Name) {
			add(f+".name", "%q is not a valid lockspace name (1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit)", ls.Name)
		} else if j, dup := seen[ls.Name]; dup {
			add(f+".name", "%q is also dlm.lockspaces[%d]", ls.Name, j)
		}
		seen[ls.Name] = i
		if ls.LVBLen != 0 && ls.LVBLen != 32 && ls.LVBLen != 64 {
			add(f+".lvb-len", "%d B; want 32 or 64 (the same on every node)", ls.LVBLen)
		}
	}
	return p
}
