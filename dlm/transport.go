package dlm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"time"

	"github.com/replicad/replicad/dlm/wire"
	"github.com/replicad/replicad/internal/clock"
	"github.com/replicad/replicad/internal/peerauth"
)

// peerLink is the outgoing side of the connection to one peer: a queue of
// encoded envelopes drained by the peer's sender goroutine. Envelopes that
// do not fit, or are lost with a connection, come back with the engine's
// session retransmission.
type peerLink struct {
	node NodeID
	addr string
	q    chan []byte
}

func (n *Node) send(to NodeID, env *wire.Envelope) {
	p := n.peers[to]
	if p == nil {
		return
	}
	select {
	case p.q <- wire.Marshal(env):
	default:
	}
}

func (n *Node) authConfig() peerauth.Config {
	return peerauth.Config{Secret: n.cfg.Secret, Purpose: Purpose, Node: uint32(n.cfg.NodeID), Incarnation: n.inc}
}

func (n *Node) acceptLoop() {
	defer n.wg.Done()
	for {
		conn, err := n.cfg.Listener.Accept()
		if err != nil {
			if n.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			n.log.Warn("accepting peer connection", "err", err)
			if !clock.Sleep(n.clk, n.cfg.RedialInterval, n.ctx.Done()) {
				return
			}
			continue
		}
		n.mu.Lock()
		if n.mu.closed {
			n.mu.Unlock()
			conn.Close()
			return
		}
		n.mu.conns[conn] = struct{}{}
		n.wg.Add(1)
		n.mu.Unlock()
		go n.serveConn(conn)
	}
}

// serveConn authenticates an incoming connection and reads envelopes from
// it until it fails. A peer that sends garbage is disconnected.
func (n *Node) serveConn(conn net.Conn) {
	defer n.wg.Done()
	defer func() {
		n.mu.Lock()
		delete(n.mu.conns, conn)
		n.mu.Unlock()
		conn.Close()
	}()
	conn.SetDeadline(time.Now().Add(n.cfg.HandshakeTimeout)) // a socket deadline is wall time
	peer, err := peerauth.Handshake(conn, n.authConfig(), peerauth.Acceptor)
	if err != nil {
		n.log.Warn("refused peer connection: authentication failed", "remote", conn.RemoteAddr().String(), "err", err)
		return
	}
	from := NodeID(peer.Node)
	if _, ok := n.peers[from]; !ok {
		n.log.Warn("refused peer connection from a node that is not configured", "remote", conn.RemoteAddr().String(), "claimed-node", from)
		return
	}
	conn.SetDeadline(time.Time{})
	n.peerUp(from, peer.Incarnation)
	r := bufio.NewReaderSize(conn, 64<<10)
	for {
		body, err := wire.ReadFrame(r, 0)
		if err != nil {
			if n.ctx.Err() == nil {
				n.log.Debug("peer connection closed", "peer", from, "err", err)
			}
			return
		}
		n.heard(from)
		if len(body) == 0 {
			continue // heartbeat
		}
		env, err := wire.Unmarshal(body)
		if err != nil {
			n.log.Warn("closing connection from peer that sent a malformed message", "peer", from, "err", err)
			return
		}
		if env.From != from || env.To != n.cfg.NodeID {
			n.log.Warn("closing connection from peer that sent a misaddressed message", "peer", from, "from", env.From, "to", env.To)
			return
		}
		n.route(env)
	}
}

func (n *Node) heard(node NodeID) {
	n.mu.Lock()
	n.mu.lastHeard[node] = n.clk.Now()
	n.mu.Unlock()
}

func (n *Node) peerUp(node NodeID, inc uint64) {
	n.heard(node)
	n.mu.Lock()
	n.mu.up[node] = true
	n.mu.Unlock()
	if po, ok := n.ms.(PeerObserver); ok {
		po.PeerUp(node, inc)
	}
}

// checkLiveness reports peers silent for longer than the dead timeout.
func (n *Node) checkLiveness() {
	po, ok := n.ms.(PeerObserver)
	if !ok {
		return
	}
	now := n.clk.Now()
	var dead []NodeID
	n.mu.Lock()
	for node, up := range n.mu.up {
		if up && now.Sub(n.mu.lastHeard[node]) > n.cfg.DeadTimeout {
			n.mu.up[node] = false
			dead = append(dead, node)
		}
	}
	n.mu.Unlock()
	for _, node := range dead {
		n.log.Warn("peer silent for longer than the dead timeout; treating it as failed", "peer", node, "dead-timeout", n.cfg.DeadTimeout)
		po.PeerDown(node)
	}
}

// sender keeps a connection to one peer and writes its queue to it, with a
// heartbeat when the queue is idle.
func (n *Node) sender(p *peerLink) {
	defer n.wg.Done()
	failures := 0
	for n.ctx.Err() == nil {
		conn, err := n.dial(p)
		if err != nil {
			if failures%20 == 0 {
				lvl := n.log.Debug
				if errors.Is(err, peerauth.ErrRefused) || errors.Is(err, peerauth.ErrBadProof) || errors.Is(err, peerauth.ErrProtocol) {
					lvl = n.log.Warn
				}
				lvl("cannot connect to peer", "peer", p.node, "addr", p.addr, "err", err)
			}
			failures++
			if !clock.Sleep(n.clk, n.cfg.RedialInterval, n.ctx.Done()) {
				return
			}
			continue
		}
		failures = 0
		n.pump(conn, p)
		conn.Close()
	}
}

func (n *Node) dial(p *peerLink) (net.Conn, error) {
	conn, err := n.cfg.Dial(p.addr, n.cfg.HandshakeTimeout)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(n.cfg.HandshakeTimeout))
	peer, err := peerauth.Handshake(conn, n.authConfig(), peerauth.Dialer)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if NodeID(peer.Node) != p.node {
		conn.Close()
		return nil, errors.New("dlm: the node at " + p.addr + " is not the configured peer")
	}
	conn.SetDeadline(time.Time{})
	n.peerUp(p.node, peer.Incarnation)
	return conn, nil
}

func (n *Node) pump(conn net.Conn, p *peerLink) {
	w := bufio.NewWriterSize(conn, 64<<10)
	hb := n.clk.NewTimer(n.cfg.HeartbeatInterval)
	defer hb.Stop()
	var hdr [4]byte
	write := func(body []byte) error {
		binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
		if _, err := w.Write(hdr[:]); err != nil {
			return err
		}
		_, err := w.Write(body)
		return err
	}
	for {
		select {
		case <-n.ctx.Done():
			return
		case body := <-p.q:
			if err := write(body); err != nil {
				return
			}
			// coalesce what is queued into one flush
			for more := true; more; {
				select {
				case b := <-p.q:
					if err := write(b); err != nil {
						return
					}
				default:
					more = false
				}
			}
			if err := w.Flush(); err != nil {
				return
			}
		case <-hb.C():
			hb.Reset(n.cfg.HeartbeatInterval)
			if write(nil) != nil || w.Flush() != nil {
				return
			}
		}
	}
}
