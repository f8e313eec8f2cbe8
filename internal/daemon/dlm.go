package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replicad/replicad/dlm"
	"github.com/replicad/replicad/fence"
	"github.com/replicad/replicad/internal/control"
)

// This file wires dlm/ into the daemon: the Node's lifetime (peer
// listener, local client socket, lockspaces from the config), the
// /v1/dlm/ endpoints of the control API, and the fence results the DLM's
// membership takes from the fencing subsystem (docs/dlm.md).

// dlmLeaveTimeout bounds how long shutdown waits for the peers to
// acknowledge this node's leaving its lockspaces; peers that do not
// answer see this node fail instead (and want it fenced).
const dlmLeaveTimeout = 10 * time.Second

// dlmService holds the daemon's DLM node; nil until Run starts it, and
// when the DLM is not enabled.
type dlmService struct {
	node   atomic.Pointer[dlm.Node]
	listen string // the peer listener's address, once started
}

// DLM is the daemon's DLM node for other subsystems; nil when the DLM is
// not enabled or the daemon is not running.
func (d *Daemon) DLM() *dlm.Node { return d.dlm.node.Load() }

// startDLM starts the DLM node, serves the local client socket, joins the
// configured lockspaces and returns the closer: local clients are
// disconnected first (their locks released, `repctl lock run` stops its
// command), then every lockspace is left cleanly, then the node stops.
func (d *Daemon) startDLM(ctx context.Context) (func(), error) {
	c := d.cfg.DLM
	if !c.Enabled {
		return func() {}, nil
	}
	secret, err := d.clusterSecret()
	if err != nil {
		return nil, err
	}
	var ids []dlm.NodeID
	peers := map[dlm.NodeID]string{}
	for _, n := range d.cfg.Cluster.Nodes {
		ids = append(ids, dlm.NodeID(n.ID))
		if n.Name != d.cfg.Node.Name {
			peers[dlm.NodeID(n.ID)] = n.DLMAddress
		}
	}
	self := dlm.NodeID(d.cfg.Node.ID)
	ms, err := dlm.NewStatic(self, ids, c.TwoNode, nil)
	if err != nil {
		return nil, err
	}
	addr := d.dlmListen()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dlm: peer listener on %s: %w", addr, err)
	}
	cfg := dlm.DefaultConfig()
	cfg.NodeID, cfg.Peers, cfg.Secret, cfg.Listener, cfg.Membership = self, peers, secret, ln, ms
	cfg.HeartbeatInterval, cfg.DeadTimeout = c.HeartbeatInterval, c.DeadTimeout
	cfg.Logger = d.log
	node, err := dlm.NewNode(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	sock, err := listenUnix(c.Socket, 0o660, false)
	if err != nil {
		node.Close()
		return nil, fmt.Errorf("dlm.socket: %w", err)
	}
	clients := &trackedListener{Listener: sock, conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := node.ServeLocal(clients); err != nil {
			d.log.Error("dlm local socket failed", "socket", c.Socket, "err", err)
		}
	}()
	stop := func() {
		d.dlm.node.Store(nil)
		clients.closeAll()
		lctx, cancel := context.WithTimeout(context.Background(), dlmLeaveTimeout)
		defer cancel()
		var lwg sync.WaitGroup
		for _, st := range node.Lockspaces() {
			ls, err := node.Lockspace(st.Lockspace)
			if err != nil {
				continue
			}
			lwg.Add(1)
			go func() {
				defer lwg.Done()
				if err := ls.Leave(lctx, dlm.ReleaseAll); err != nil {
					d.log.Warn("leaving lockspace at shutdown", "lockspace", ls.Name(), "err", err)
				}
			}()
		}
		lwg.Wait()
		node.Close()
		wg.Wait()
		os.Remove(c.Socket)
	}
	for _, l := range c.Lockspaces {
		if _, err := node.JoinLockspace(ctx, l.Name, dlm.LockspaceConfig{LVBLen: l.LVBLen}); err != nil {
			stop()
			return nil, fmt.Errorf("dlm.lockspaces: joining %q: %w", l.Name, err)
		}
	}
	d.dlm.listen = ln.Addr().String()
	d.dlm.node.Store(node)
	d.log.Info("dlm ready", "node-id", self, "listen", d.dlm.listen, "socket", c.Socket, "lockspaces", len(c.Lockspaces))
	return stop, nil
}

// clusterSecret reads cluster.secret or cluster.secret-file.
// clusterSecret is the shared secret replication and the DLM authenticate
// peers with: cluster.secret, or the trimmed contents of cluster.secret-file.
func (d *Daemon) clusterSecret() ([]byte, error) {
	cl := d.cfg.Cluster
	if cl.SecretFile == "" {
		return []byte(cl.Secret), nil
	}
	b, err := os.ReadFile(cl.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("cluster.secret-file: %w", err)
	}
	return []byte(strings.TrimSpace(string(b))), nil
}

// dlmListen is where this node accepts DLM peers.
func (d *Daemon) dlmListen() string {
	if l := d.cfg.DLM.Listen; l != "" {
		_, addr, _ := ParseListen(l)
		return addr
	}
	for _, n := range d.cfg.Cluster.Nodes {
		if n.Name == d.cfg.Node.Name {
			return n.DLMAddress
		}
	}
	return ""
}

// trackedListener remembers the connections it accepted so that shutdown
// can close them before the lockspaces are left: a client must not go on
// believing it holds a lock the cluster no longer knows.
type trackedListener struct {
	net.Listener
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

type trackedConn struct {
	net.Conn
	l *trackedListener
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// closeAll closes the listener and every accepted connection.
func (l *trackedListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	conns := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	l.Listener.Close()
	for _, c := range conns {
		c.Close()
	}
}

// tellDLMFenced passes the fencing subsystem's newest fence of node (an
// off or reboot that succeeded, or an operator's confirmation) to the DLM:
// every incarnation of node started before that operation began counts as
// fenced, so locks it held can be recovered.
func (d *Daemon) tellDLMFenced(fc *fence.Fencer, node string) {
	n := d.dlm.node.Load()
	if n == nil || node == d.cfg.Node.Name {
		return
	}
	id, ok := d.nodeID(node)
	if !ok {
		return
	}
	op, ok := fc.LastFenced(node)
	if !ok {
		return
	}
	if err := n.RecordFenced(dlm.NodeID(id), op.Started); err != nil {
		d.log.Warn("passing a fence to the DLM", "node", node, "op", op.ID, "err", err)
	}
}

func (d *Daemon) dlmRoutes() {
	h := func(f func(r *http.Request, n *dlm.Node) (any, error)) http.Handler {
		return control.Handle(d.log, func(r *http.Request) (any, error) {
			n := d.dlm.node.Load()
			if n == nil {
				return nil, d.dlmUnavailable()
			}
			return f(r, n)
		})
	}
	d.mux.Handle("GET /v1/dlm", h(func(_ *http.Request, n *dlm.Node) (any, error) {
		return d.dlmInfo(n), nil
	}))
	d.mux.Handle("GET /v1/dlm/lockspaces", h(func(_ *http.Request, n *dlm.Node) (any, error) {
		return nonNil(n.Lockspaces()), nil
	}))
	d.mux.Handle("POST /v1/dlm/lockspaces", h(func(r *http.Request, n *dlm.Node) (any, error) {
		var req control.JoinRequest
		if err := control.DecodeBody(r, &req); err != nil {
			return nil, err
		}
		if !validLockspace.MatchString(req.Name) {
			return nil, control.Errorf(http.StatusBadRequest, "", "%q is not a valid lockspace name (1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit)", req.Name)
		}
		ls, err := n.JoinLockspace(r.Context(), req.Name, dlm.LockspaceConfig{LVBLen: req.LVBLen})
		if err != nil {
			return nil, dlmError(err, req.Name)
		}
		return ls.Status(), nil
	}))
	d.mux.Handle("GET /v1/dlm/lockspaces/{name}", h(func(r *http.Request, n *dlm.Node) (any, error) {
		ls, err := n.Lockspace(r.PathValue("name"))
		if err != nil {
			return nil, dlmError(err, r.PathValue("name"))
		}
		return ls.Status(), nil
	}))
	d.mux.Handle("GET /v1/dlm/lockspaces/{name}/dump", h(func(r *http.Request, n *dlm.Node) (any, error) {
		ls, err := n.Lockspace(r.PathValue("name"))
		if err != nil {
			return nil, dlmError(err, r.PathValue("name"))
		}
		return ls.Dump(), nil
	}))
	d.mux.Handle("DELETE /v1/dlm/lockspaces/{name}", h(func(r *http.Request, n *dlm.Node) (any, error) {
		name := r.PathValue("name")
		force := dlm.ReleaseIfUnused
		if s := r.URL.Query().Get("force"); s != "" {
			f, err := strconv.Atoi(s)
			if err != nil || f < 0 || f > 3 {
				return nil, control.Errorf(http.StatusBadRequest, "0 refuses with any lock, 1 with local locks, 2 drops them all, 3 also does not wait for the peers",
					"force=%q: want a release-force level 0..3", s)
			}
			force = dlm.ReleaseForce(f)
		}
		ls, err := n.Lockspace(name)
		if err != nil {
			return nil, dlmError(err, name)
		}
		ctx, cancel := context.WithTimeout(r.Context(), dlmLeaveTimeout)
		defer cancel()
		if err := ls.Leave(ctx, force); err != nil {
			return nil, dlmError(err, name)
		}
		return control.Empty{}, nil
	}))
	d.mux.Handle("POST /v1/dlm/fence-confirm", h(func(r *http.Request, n *dlm.Node) (any, error) {
		var req control.FenceConfirmRequest
		if err := control.DecodeBody(r, &req); err != nil {
			return nil, err
		}
		cn, ok := d.clusterNode(req.Node)
		if !ok {
			return nil, dlmError(fmt.Errorf("%w: %q", dlm.ErrUnknownNode, req.Node), req.Node)
		}
		if cn.Name == d.cfg.Node.Name {
			return nil, control.Errorf(http.StatusBadRequest, "run it on a surviving node, naming the node that failed",
				"%s is this node: a node cannot confirm its own fence", cn.Name)
		}
		if err := n.ConfirmFenced(dlm.NodeID(cn.ID)); err != nil {
			return nil, dlmError(err, cn.Name)
		}
		d.log.Warn("DLM fence confirmed by operator", "node", cn.Name, "by", d.requester(r))
		for _, dn := range d.dlmInfo(n).Nodes {
			if dn.ID == cn.ID {
				return dn, nil
			}
		}
		return nil, fmt.Errorf("node %s vanished from the DLM's view", cn.Name)
	}))
}

// clusterNode finds a node of cluster.nodes by name or id.
func (d *Daemon) clusterNode(s string) (ClusterNode, bool) {
	for _, n := range d.cfg.Cluster.Nodes {
		if n.Name == s || strconv.FormatUint(uint64(n.ID), 10) == s {
			return n, true
		}
	}
	return ClusterNode{}, false
}

func (d *Daemon) dlmInfo(n *dlm.Node) control.DLM {
	cs := n.Cluster()
	out := control.DLM{Node: d.cfg.Node.Name, NodeID: d.cfg.Node.ID, Listen: d.dlm.listen, Socket: d.cfg.DLM.Socket,
		Quorate: cs.Quorate, Nodes: []control.DLMNode{}, Lockspaces: nonNil(n.Lockspaces())}
	for _, cn := range d.cfg.Cluster.Nodes {
		id := dlm.NodeID(cn.ID)
		dn := control.DLMNode{Name: cn.Name, ID: cn.ID, Address: cn.DLMAddress,
			FailedIncarnation: cs.Failed[id], FencedIncarnation: cs.Fenced[id]}
		unfenced := cs.Failed[id] > cs.Fenced[id]
		switch {
		case id == n.ID():
			dn.State = "self"
		case slices.Contains(cs.Unknown, id):
			dn.State, dn.NeedsFence = "unknown", true
		case unfenced:
			// alive again with a new incarnation, or down: the failed
			// one's locks wait for the fence either way
			dn.State, dn.NeedsFence = "failed", true
		case slices.Contains(cs.Alive, id):
			dn.State = "alive"
		default:
			dn.State = "fenced"
		}
		out.Nodes = append(out.Nodes, dn)
	}
	return out
}

func (d *Daemon) dlmUnavailable() error {
	if !d.cfg.DLM.Enabled {
		return &control.StatusError{Status: http.StatusNotFound, Code: control.CodeDLMNotConfigured,
			Err: fmt.Errorf("the DLM is not enabled on %s", d.cfg.Node.Name),
			Hint: "set dlm.enabled: true, give every cluster.nodes entry a dlm-address (and an id from 1), " +
				"and restart replicad (see docs/dlm.md and docs/configuration.md)"}
	}
	return &control.StatusError{Status: http.StatusServiceUnavailable, Code: control.CodeDLMNotRunning,
		Err: fmt.Errorf("the DLM is not running on %s", d.cfg.Node.Name), Hint: "replicad is starting or shutting down; try again"}
}

// dlmError turns a dlm error into a control error with a code, its HTTP
// status and what to do next; name is the lockspace or node it was about.
func dlmError(err error, name string) error {
	se := &control.StatusError{Status: http.StatusInternalServerError, Err: err}
	switch {
	case errors.Is(err, dlm.ErrNotJoined):
		se.Status, se.Code = http.StatusNotFound, control.CodeNotJoined
		se.Hint = fmt.Sprintf("join it with 'repctl lock join %s', or list it under dlm.lockspaces; 'repctl lock ls' shows the joined ones", name)
	case errors.Is(err, dlm.ErrBusy):
		se.Status, se.Code = http.StatusConflict, control.CodeLockspaceBusy
		se.Hint = "release the locks first, or leave with a higher --force level (2 drops them)"
	case errors.Is(err, dlm.ErrNotFailed):
		se.Status, se.Code = http.StatusBadRequest, control.CodeNotFailed
		se.Hint = fmt.Sprintf("the DLM knows of no failure of %s waiting for a fence; 'repctl lock ls' shows each node's state", name)
	case errors.Is(err, dlm.ErrUnknownNode):
		se.Status, se.Code = http.StatusNotFound, control.CodeUnknownNode
		se.Hint = "give a node name (or id) from cluster.nodes"
	case errors.Is(err, dlm.ErrInvalid), errors.Is(err, dlm.ErrJoined):
		se.Status = http.StatusBadRequest
	case errors.Is(err, dlm.ErrClosed), errors.Is(err, dlm.ErrLeft):
		se.Status, se.Code = http.StatusServiceUnavailable, control.CodeDLMNotRunning
		se.Hint = "replicad is shutting down, or the lockspace was just left"
	}
	return se
}

var _ net.Listener = (*trackedListener)(nil)
