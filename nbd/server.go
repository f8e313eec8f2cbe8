package nbd

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Server serves exports over any number of listeners.
type Server struct {
	cfg     Config
	exports Exports
	log     *slog.Logger
	wg      sync.WaitGroup
	mu      struct {
		sync.Mutex
		listeners map[net.Listener]struct{}
		conns     map[*conn]struct{}
		closed    bool
	}
}

// NewServer validates cfg and returns a server for exports.
func NewServer(cfg Config, exports Exports) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, exports: exports, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.mu.listeners = make(map[net.Listener]struct{})
	s.mu.conns = make(map[*conn]struct{})
	return s, nil
}

// Serve accepts connections on l until Close. It returns ErrServerClosed
// after Close, or the listener's error.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.mu.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.mu.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				s.log.Warn("nbd accept failed; retrying", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				backoff = min(2*backoff, time.Second)
				continue
			}
			return err
		}
		backoff = 5 * time.Millisecond
		c := &conn{s: s, nc: nc, done: make(chan struct{})}
		s.mu.Lock()
		if s.mu.closed {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.mu.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.mu.conns, c)
				s.mu.Unlock()
				close(c.done)
			}()
			c.run()
		}()
	}
}

// Close stops every listener, closes every connection (requests in flight
// finish first) and waits for all goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.mu.closed = true
	for l := range s.mu.listeners {
		l.Close()
	}
	for c := range s.mu.conns {
		c.abort()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// CloseExport closes every connection to the named export and waits until
// their requests in flight have finished.
func (s *Server) CloseExport(name string) {
	s.mu.Lock()
	var victims []*conn
	for c := range s.mu.conns {
		if c.exportName() == name {
			victims = append(victims, c)
			c.abort()
		}
	}
	s.mu.Unlock()
	for _, c := range victims {
		<-c.done
	}
}

// Connections counts the connections in transmission, per export.
func (s *Server) Connections() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int)
	for c := range s.mu.conns {
		if n := c.exportName(); n != "" {
			out[n]++
		}
	}
	return out
}
