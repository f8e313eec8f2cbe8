package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/replicad/replicad/dlm"
	"github.com/replicad/replicad/dlm/engine"
)

// timing is the nodes' timer configuration: the daemon's defaults, except
// that the smoke test shortens the dead timeout.
type timing struct {
	deadTimeout time.Duration // 0: dlm.DefaultConfig's
}

// cluster is n DLM nodes in this process, on 127.0.0.1, authenticated with
// a fresh random secret as in production.
type cluster struct {
	nodes map[dlm.NodeID]*dlm.Node
}

// startCluster starts n nodes; with hops set, every peer connection
// records its reads and writes there.
func startCluster(n int, tm timing, verbose bool, hops *hopRecorder) (*cluster, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	lns := map[dlm.NodeID]net.Listener{}
	addrs := map[dlm.NodeID]string{}
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		addrs[dlm.NodeID(i)] = ln.Addr().String()
		if hops != nil {
			ln = hopListener{ln, hops}
		}
		lns[dlm.NodeID(i)] = ln
	}
	c := &cluster{nodes: map[dlm.NodeID]*dlm.Node{}}
	for i := 1; i <= n; i++ {
		id := dlm.NodeID(i)
		cfg := dlm.DefaultConfig()
		cfg.NodeID = id
		cfg.Listener = lns[id]
		cfg.Secret = secret
		cfg.Peers = map[dlm.NodeID]string{}
		for p, a := range addrs {
			if p != id {
				cfg.Peers[p] = a
			}
		}
		if hops != nil {
			cfg.Dial = func(addr string, timeout time.Duration) (net.Conn, error) {
				c, err := net.DialTimeout("tcp", addr, timeout)
				if err != nil {
					return nil, err
				}
				return hopConn{c, hops}, nil
			}
		}
		if tm.deadTimeout > 0 {
			cfg.DeadTimeout = tm.deadTimeout
		}
		var w io.Writer = io.Discard
		if verbose {
			w = os.Stderr
		}
		cfg.Logger = slog.New(slog.NewTextHandler(w, nil))
		nd, err := dlm.NewNode(cfg)
		if err != nil {
			c.close()
			for j := i; j <= n; j++ {
				lns[dlm.NodeID(j)].Close()
			}
			return nil, err
		}
		c.nodes[id] = nd
	}
	return c, nil
}

func (c *cluster) close() {
	for _, nd := range c.nodes {
		nd.Close()
	}
}

// startJoined starts an n-node cluster (see startCluster) and joins
// lockspace name on every node; the caller closes the cluster.
func startJoined(n int, tm timing, verbose bool, hops *hopRecorder, name string) (*cluster, map[dlm.NodeID]*dlm.Lockspace, error) {
	c, err := startCluster(n, tm, verbose, hops)
	if err != nil {
		return nil, nil, err
	}
	lss, err := c.join(name)
	if err != nil {
		c.close()
		return nil, nil, err
	}
	return c, lss, nil
}

// join joins lockspace name on every node and waits until each runs with
// every node as a member.
func (c *cluster) join(name string) (map[dlm.NodeID]*dlm.Lockspace, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[dlm.NodeID]*dlm.Lockspace{}
	for id, nd := range c.nodes {
		ls, err := nd.JoinLockspace(ctx, name, dlm.LockspaceConfig{})
		if err != nil {
			return nil, err
		}
		out[id] = ls
	}
	for id, ls := range out {
		for {
			st := ls.Status()
			if st.State == engine.StateRunning && len(st.Members) == len(c.nodes) {
				break
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("node %d: lockspace %q not running with %d members: %+v", id, name, len(c.nodes), st)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return out, nil
}

// dirIndex is the index, in the sorted member list, of a resource's
// directory node: FNV-1a of the name modulo the number of members
// (docs/dlm.md, "Distribution").
func dirIndex(name string, members int) int {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32() % uint32(members))
}

// nameWithDir returns the first of prefix-0, prefix-1, ... whose directory
// is the member at index idx of members.
func nameWithDir(prefix string, idx, members int) string {
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		if dirIndex(name, members) == idx {
			return name
		}
	}
}

// waitState polls ls until its state is want.
func waitState(ctx context.Context, ls *dlm.Lockspace, want string) error {
	for {
		st := ls.Status()
		if st.State == want {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("lockspace %q on node %d is %s (%s), want %s", st.Lockspace, st.Node, st.State, st.Detail, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hopRecorder notes the time of every read and write on the peer
// connections while on, to break a remote acquire into socket events.
type hopRecorder struct {
	mu  sync.Mutex
	on  bool
	evs []time.Time
}

func (h *hopRecorder) mark() {
	h.mu.Lock()
	if h.on {
		h.evs = append(h.evs, time.Now())
	}
	h.mu.Unlock()
}

func (h *hopRecorder) start() {
	h.mu.Lock()
	h.on, h.evs = true, h.evs[:0]
	h.mu.Unlock()
}

func (h *hopRecorder) stop() []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.on = false
	return slices.Clone(h.evs)
}

type hopConn struct {
	net.Conn
	h *hopRecorder
}

func (c hopConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.h.mark()
	}
	return n, err
}

func (c hopConn) Write(b []byte) (int, error) {
	c.h.mark()
	return c.Conn.Write(b)
}

type hopListener struct {
	net.Listener
	h *hopRecorder
}

func (l hopListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return hopConn{c, l.h}, nil
}
