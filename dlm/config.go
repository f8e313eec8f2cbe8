package dlm

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/replicad/replicad/internal/clock"
	"github.com/replicad/replicad/internal/peerauth"
)

// Purpose is the peer-auth purpose string of DLM connections, so that a
// DLM connection cannot be replayed into another replicad protocol that
// shares the secret.
const Purpose = "replicad-dlm/1"

// Config configures a Node. The daemon decodes the tagged fields from its
// configuration file and fills in the rest.
type Config struct {
	NodeID NodeID            `mapstructure:"node-id"`
	Peers  map[NodeID]string `mapstructure:"peers"` // host:port of every other node
	// Secret is the cluster's shared secret (at least 16 bytes).
	Secret []byte `mapstructure:"-"`

	TickInterval      time.Duration `mapstructure:"tick-interval"`
	HeartbeatInterval time.Duration `mapstructure:"heartbeat-interval"`
	DeadTimeout       time.Duration `mapstructure:"dead-timeout"`
	HandshakeTimeout  time.Duration `mapstructure:"handshake-timeout"`
	RedialInterval    time.Duration `mapstructure:"redial-interval"`

	// Listener accepts peer connections; the Node closes it on Close.
	Listener net.Listener `mapstructure:"-"`
	// Membership supplies liveness, quorum and fencing; nil means a Static
	// membership over NodeID and Peers.
	Membership Membership `mapstructure:"-"`
	// Dial connects to a peer; nil means net.Dialer.DialContext over TCP.
	Dial   func(addr string, timeout time.Duration) (net.Conn, error) `mapstructure:"-"`
	Clock  clock.Clock                                                `mapstructure:"-"`
	Logger *slog.Logger                                               `mapstructure:"-"`
}

// DefaultConfig returns a Config with the timing defaults.
func DefaultConfig() Config {
	return Config{
		TickInterval:      100 * time.Millisecond,
		HeartbeatInterval: 500 * time.Millisecond,
		DeadTimeout:       3 * time.Second,
		HandshakeTimeout:  5 * time.Second,
		RedialInterval:    500 * time.Millisecond,
	}
}

// Validate reports every problem with c.
func (c *Config) Validate() error {
	var errs []string
	if c.NodeID == 0 {
		errs = append(errs, "dlm.node-id: 0; want 1..4294967295")
	}
	for id, addr := range c.Peers {
		if id == c.NodeID || id == 0 {
			errs = append(errs, fmt.Sprintf("dlm.peers: node %d listed as a peer; want other nodes' ids", id))
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Sprintf("dlm.peers[%d]: %q is not host:port", id, addr))
		}
	}
	if len(c.Secret) < peerauth.MinSecretLen {
		errs = append(errs, fmt.Sprintf("dlm secret: %d B; want at least %d B (a missing secret is refused)", len(c.Secret), peerauth.MinSecretLen))
	}
	pos := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Sprintf("dlm.%s: %v; want > 0", name, d))
		}
	}
	pos("tick-interval", c.TickInterval)
	pos("heartbeat-interval", c.HeartbeatInterval)
	pos("dead-timeout", c.DeadTimeout)
	pos("handshake-timeout", c.HandshakeTimeout)
	pos("redial-interval", c.RedialInterval)
	if c.DeadTimeout > 0 && c.HeartbeatInterval > 0 && c.DeadTimeout < 2*c.HeartbeatInterval {
		errs = append(errs, fmt.Sprintf("dlm.dead-timeout: %v; want at least twice heartbeat-interval (%v)", c.DeadTimeout, c.HeartbeatInterval))
	}
	if c.Listener == nil {
		errs = append(errs, "dlm listener: nil; the daemon must pass the peer listener")
	}
	if len(errs) > 0 {
		return errors.New("dlm config: " + strings.Join(errs, "; "))
	}
	return nil
}
