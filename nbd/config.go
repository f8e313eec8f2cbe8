package nbd

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Config tunes the server.
type Config struct {
	// MaxPayload is the largest READ or WRITE accepted, advertised as the
	// maximum block size (bytes, 64 KiB..128 MiB; default 32 MiB). A WRITE
	// announcing more closes the connection, since its payload cannot be
	// skipped safely; a READ asking for more gets EINVAL.
	MaxPayload uint32 `mapstructure:"max-payload"`
	// MaxInflight is how many requests of one connection run at once
	// (1..4096; default 256; the Linux client queues 128 per connection).
	MaxInflight int `mapstructure:"max-inflight"`
	// HandshakeTimeout bounds negotiation (default 30s).
	HandshakeTimeout time.Duration `mapstructure:"handshake-timeout"`
	// TLS enables STARTTLS; nil disables it.
	TLS *tls.Config `mapstructure:"-"`
	// RequireTLS refuses every option but STARTTLS and ABORT before TLS.
	RequireTLS bool `mapstructure:"require-tls"`
	// Logger for connection events (slog.Default if nil).
	Logger *slog.Logger `mapstructure:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{MaxPayload: 32 << 20, MaxInflight: 256, HandshakeTimeout: 30 * time.Second}
}

// Validate reports every problem.
func (c Config) Validate() error {
	var p []string
	if c.MaxPayload < 64<<10 || c.MaxPayload > 128<<20 {
		p = append(p, fmt.Sprintf("max-payload: %d B; want 64 KiB..128 MiB", c.MaxPayload))
	}
	if c.MaxInflight < 1 || c.MaxInflight > 4096 {
		p = append(p, fmt.Sprintf("max-inflight: %d; want 1..4096", c.MaxInflight))
	}
	if c.HandshakeTimeout <= 0 {
		p = append(p, fmt.Sprintf("handshake-timeout: %v; want > 0", c.HandshakeTimeout))
	}
	if c.RequireTLS && c.TLS == nil {
		p = append(p, "require-tls: set but no TLS certificate is configured")
	}
	if len(p) > 0 {
		return fmt.Errorf("nbd config: %s", strings.Join(p, "; "))
	}
	return nil
}
