package replication

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/replicad/replicad/internal/peerauth"
	"github.com/replicad/replicad/replication/wire"
)

// Purpose binds the peer-auth handshake to the replication protocol, so a
// DLM connection cannot be replayed into it.
const Purpose = "replicad-replication/1"

// TransportConfig configures the node's replication endpoint.
type TransportConfig struct {
	NodeID uint32
	// Secret is the cluster's shared secret (at least 16 bytes).
	Secret []byte
	// Peers maps node ids to their replication addresses (host:port).
	Peers map[uint32]string
	// PeerNames maps node ids to names; with TLS, a peer's certificate must
	// be valid for its name.
	PeerNames map[uint32]string
	// TLS, if set, wraps every connection (both directions verify
	// certificates: set ClientAuth and RootCAs accordingly).
	TLS *tls.Config
	// DialTimeout bounds connecting and authenticating (default 10s).
	DialTimeout time.Duration
	Logger      *slog.Logger
}

// Transport accepts and dials authenticated peer connections and routes
// them to the replicator of their volume.
type Transport struct {
	cfg         TransportConfig
	log         *slog.Logger
	incarnation uint64
	wg          sync.WaitGroup
	mu          struct {
		sync.Mutex
		routes    map[routeKey]chan *peerConn
		listeners []net.Listener
		closed    bool
		// refused is, per claimed node, why its last incoming connection
		// was refused (cleared when one authenticates).
		refused map[uint32]string
	}
}

func (t *Transport) noteRefused(node uint32, why string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if why == "" {
		delete(t.mu.refused, node)
		return
	}
	if t.mu.refused == nil {
		t.mu.refused = map[uint32]string{}
	}
	t.mu.refused[node] = why
}

// dialersAt lists the configured peers that dial this node (the lower
// node id dials) and whose address is addr's host.
func (t *Transport) dialersAt(addr net.Addr) []uint32 {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return nil
	}
	var ids []uint32
	for id, hp := range t.cfg.Peers {
		if id >= t.cfg.NodeID {
			continue
		}
		host, _, err := net.SplitHostPort(hp)
		if err != nil {
			continue
		}
		var ips []net.IPAddr
		if ip := net.ParseIP(host); ip != nil {
			ips = []net.IPAddr{{IP: ip}}
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			ips, _ = net.DefaultResolver.LookupIPAddr(ctx, host)
			cancel()
		}
		if slices.ContainsFunc(ips, func(a net.IPAddr) bool { return a.IP.Equal(ta.IP) }) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func (t *Transport) peerName(id uint32) string {
	if n := t.cfg.PeerNames[id]; n != "" {
		return fmt.Sprintf("%d (%s)", id, n)
	}
	return fmt.Sprint(id)
}

// refusedFrom says why the last incoming connection from node was refused
// ("" if the last one authenticated).
func (t *Transport) refusedFrom(node uint32) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mu.refused[node]
}

type routeKey struct {
	volume string
	peer   uint32
}

// peerConn is an authenticated connection; for accepted ones, first is the
// peer's Hello, already read.
type peerConn struct {
	net.Conn
	r     *bufio.Reader
	first *wire.Hello
}

// NewTransport validates cfg.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	if len(cfg.Secret) < peerauth.MinSecretLen {
		return nil, fmt.Errorf("replication secret: %d bytes; want at least %d", len(cfg.Secret), peerauth.MinSecretLen)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var b [8]byte
	rand.Read(b[:])
	t := &Transport{cfg: cfg, log: cfg.Logger, incarnation: binary.LittleEndian.Uint64(b[:])}
	t.mu.routes = make(map[routeKey]chan *peerConn)
	return t, nil
}

func (t *Transport) authConfig() peerauth.Config {
	return peerauth.Config{Secret: t.cfg.Secret, Purpose: Purpose, Node: t.cfg.NodeID, Incarnation: t.incarnation}
}

// register returns the channel accepted connections of volume from peer
// arrive on.
func (t *Transport) register(volume string, peer uint32) chan *peerConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := routeKey{volume, peer}
	ch := t.mu.routes[k]
	if ch == nil {
		ch = make(chan *peerConn, 1)
		t.mu.routes[k] = ch
	}
	return ch
}

func (t *Transport) unregister(volume string, peer uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mu.routes, routeKey{volume, peer})
}

// Serve accepts connections on l until Close.
func (t *Transport) Serve(l net.Listener) error {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return net.ErrClosed
	}
	t.mu.listeners = append(t.mu.listeners, l)
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			t.mu.Lock()
			closed := t.mu.closed
			t.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			t.log.Warn("replication accept failed", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.accept(c)
		}()
	}
}

func (t *Transport) accept(c net.Conn) {
	c.SetDeadline(time.Now().Add(t.cfg.DialTimeout))
	if t.cfg.TLS != nil {
		tc := tls.Server(c, t.cfg.TLS)
		if err := tc.Handshake(); err != nil {
			t.log.Warn("replication connection refused: TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
			c.Close()
			// The handshake names no node; the address may: each peer
			// that dials this node from it carries the refusal in its
			// status until it authenticates.
			for _, id := range t.dialersAt(c.RemoteAddr()) {
				t.noteRefused(id, fmt.Sprintf("refused a connection from %s, the address of node %s: TLS handshake failed: %v", c.RemoteAddr(), t.peerName(id), err))
			}
			return
		}
		c = tc
	}
	peer, err := peerauth.Handshake(c, t.authConfig(), peerauth.Acceptor)
	if err != nil {
		t.log.Warn("replication connection refused: authentication failed", "remote", c.RemoteAddr().String(), "err", err)
		if errors.Is(err, peerauth.ErrBadProof) {
			t.noteRefused(peer.Node, fmt.Sprintf("refused a connection from %s claiming to be node %d: %v", c.RemoteAddr(), peer.Node, err))
		}
		c.Close()
		return
	}
	t.noteRefused(peer.Node, "")
	if _, ok := t.cfg.Peers[peer.Node]; !ok {
		t.log.Warn("replication connection refused: not a configured peer", "remote", c.RemoteAddr().String(), "node", peer.Node)
		c.Close()
		return
	}
	r := bufio.NewReaderSize(c, 256<<10)
	f, err := wire.ReadFrame(r, nil)
	if err != nil {
		c.Close()
		return
	}
	m, err := wire.Decode(f)
	h, ok := m.(*wire.Hello)
	if err != nil || !ok {
		t.log.Warn("replication connection refused: first message is not a hello", "node", peer.Node, "err", err)
		c.Close()
		return
	}
	t.mu.Lock()
	ch := t.mu.routes[routeKey{h.Volume, peer.Node}]
	t.mu.Unlock()
	if ch == nil {
		c.Write(wire.AppendFrame(nil, &wire.Goodbye{Reason: fmt.Sprintf("node %d has no volume %q replicating with node %d", t.cfg.NodeID, h.Volume, peer.Node)}))
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	pc := &peerConn{Conn: c, r: r, first: h}
	select {
	case ch <- pc:
	default:
		// The previous accepted connection is still waiting: replace it.
		select {
		case old := <-ch:
			old.Close()
		default:
		}
		ch <- pc
	}
}

// dial connects and authenticates to peer.
func (t *Transport) dial(ctx context.Context, peer uint32) (*peerConn, error) {
	addr, ok := t.cfg.Peers[peer]
	if !ok {
		return nil, fmt.Errorf("no address for node %d", peer)
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if t.cfg.TLS != nil {
		tcfg := t.cfg.TLS.Clone()
		if n, ok := t.cfg.PeerNames[peer]; ok {
			tcfg.ServerName = n
		}
		tc := tls.Client(c, tcfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS handshake with node %d: %w", peer, err)
		}
		c = tc
	}
	p, err := peerauth.Handshake(c, t.authConfig(), peerauth.Dialer)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("authenticating to node %d at %s: %w", peer, addr, err)
	}
	if p.Node != peer {
		c.Close()
		return nil, fmt.Errorf("%s answered as node %d, expected node %d", addr, p.Node, peer)
	}
	c.SetDeadline(time.Time{})
	return &peerConn{Conn: c, r: bufio.NewReaderSize(c, 256<<10)}, nil
}

// Close stops accepting and waits for accept goroutines.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.mu.closed = true
	for _, l := range t.mu.listeners {
		l.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	return nil
}
