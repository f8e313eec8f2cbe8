package lvstest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// NameServer is a TCP server that writes its name and a newline to every
// connection, then (by default) closes it. Stop closes the listener, so new
// connections are refused as from a dead server.
type NameServer struct {
	Name string
	Addr string
	ln   net.Listener
	wg   sync.WaitGroup

	mu struct {
		sync.Mutex
		conns map[net.Conn]bool
		count int
	}
}

// StartNameServer listens on addr inside ns.
func StartNameServer(ns *NS, name, addr string) (*NameServer, error) {
	s := &NameServer{Name: name, Addr: addr}
	s.mu.conns = map[net.Conn]bool{}
	err := ns.Do(func() error {
		var err error
		s.ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *NameServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.mu.count++
		s.mu.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.mu.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			if _, err := fmt.Fprintf(c, "%s\n", s.Name); err != nil {
				return
			}
			// Echo until the client closes: long-lived connections stay
			// open, short ones close right after reading the name.
			c.SetDeadline(time.Now().Add(2 * time.Minute))
			io.Copy(c, c)
		}()
	}
}

// Accepted returns how many connections the server accepted.
func (s *NameServer) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.count
}

// Stop closes the listener and every open connection and waits.
func (s *NameServer) Stop() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.mu.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// HTTPServer answers every GET with its name.
type HTTPServer struct {
	Name string
	srv  *http.Server
	done chan struct{}
}

// StartHTTPServer listens on addr inside ns.
func StartHTTPServer(ns *NS, name, addr string) (*HTTPServer, error) {
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		return nil, err
	}
	h := &HTTPServer{Name: name, done: make(chan struct{})}
	h.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "served-by %s\n", name)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		defer close(h.done)
		// Serve only returns ErrServerClosed after Stop, or a listener
		// error that the clients of the test will notice.
		_ = h.srv.Serve(ln)
	}()
	return h, nil
}

// Stop closes the server and waits for it.
func (h *HTTPServer) Stop() {
	h.srv.Close()
	<-h.done
}
