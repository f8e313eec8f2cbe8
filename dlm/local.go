package dlm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/replicad/replicad/dlm/localproto"
	"github.com/replicad/replicad/dlm/locktable"
)

// maxClientBacklog bounds the messages queued for a client that does not
// read; past it the client is disconnected (and its locks released).
const maxClientBacklog = 1 << 14

// ServeLocal serves the local client protocol on ln (a unix socket the
// daemon created with the permissions it wants) until ln is closed or the
// node closes. Each connection is an Owner: its locks are released when it
// disconnects, except PERSISTENT ones, which become orphans.
func (n *Node) ServeLocal(ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(n.ctx, func() { ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if n.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.serveClient(conn)
		}()
	}
}

type lockKey struct {
	ls string
	id uint32
}

type clientConn struct {
	n     *Node
	conn  net.Conn
	owner *Owner

	mu      sync.Mutex
	locks   map[lockKey]*Lock
	out     []*localproto.Msg
	cond    *sync.Cond
	closing bool
}

func (n *Node) serveClient(conn net.Conn) {
	c := &clientConn{n: n, conn: conn, locks: map[lockKey]*Lock{}}
	c.cond = sync.NewCond(&c.mu)
	c.owner = n.NewOwner(fmt.Sprintf("client %s", conn.RemoteAddr()))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writeLoop()
	}()
	stop := context.AfterFunc(n.ctx, func() { conn.Close() })
	r := bufio.NewReader(conn)
	for {
		m, err := localproto.ReadFrame(r, localproto.MaxRequest)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && err.Error() != "EOF" {
				n.log.Debug("local client gone", "err", err)
			}
			break
		}
		c.handle(m)
	}
	stop()
	c.owner.Close()
	c.mu.Lock()
	c.closing = true
	c.cond.Signal()
	c.mu.Unlock()
	wg.Wait()
	conn.Close()
}

func (c *clientConn) push(m *localproto.Msg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	if len(c.out) >= maxClientBacklog {
		c.n.log.Warn("disconnecting a local client that does not read its events")
		c.closing = true
		c.conn.Close()
		c.cond.Signal()
		return
	}
	c.out = append(c.out, m)
	c.cond.Signal()
}

func (c *clientConn) writeLoop() {
	w := bufio.NewWriter(c.conn)
	for {
		c.mu.Lock()
		for len(c.out) == 0 && !c.closing {
			c.cond.Wait()
		}
		out := c.out
		c.out = nil
		closing := c.closing
		c.mu.Unlock()
		for _, m := range out {
			if localproto.WriteFrame(w, m) != nil {
				c.conn.Close()
				return
			}
		}
		if w.Flush() != nil {
			c.conn.Close()
			return
		}
		if closing {
			return
		}
	}
}

func codeOf(err error) localproto.Code {
	switch {
	case err == nil:
		return localproto.CodeOK
	case errors.Is(err, ErrInvalid):
		return localproto.CodeInvalid
	case errors.Is(err, ErrBusy):
		return localproto.CodeBusy
	case errors.Is(err, ErrUnknownLock):
		return localproto.CodeUnknownLock
	case errors.Is(err, ErrNotJoined):
		return localproto.CodeNotJoined
	case errors.Is(err, ErrNoOrphan):
		return localproto.CodeNoOrphan
	case errors.Is(err, ErrOrphanMode):
		return localproto.CodeOrphanMode
	case errors.Is(err, ErrLeft), errors.Is(err, ErrClosed):
		return localproto.CodeLeft
	case errors.Is(err, ErrJoined):
		return localproto.CodeJoined
	}
	return localproto.CodeInternal
}

func (c *clientConn) reply(m *localproto.Msg, err error, lkid uint32, data []byte) {
	r := &localproto.Msg{Type: localproto.TypeReply, Req: m.Req, LkID: lkid, Code: codeOf(err), Data: data, Mode: locktable.IV}
	if err != nil {
		r.Err = err.Error()
		if len(r.Err) > 4000 {
			r.Err = r.Err[:4000]
		}
	}
	c.push(r)
}

func (c *clientConn) lock(m *localproto.Msg) (*Lock, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	lk := c.locks[lockKey{m.Lockspace, m.LkID}]
	if lk == nil {
		return nil, fmt.Errorf("%w: %x in %q", ErrUnknownLock, m.LkID, m.Lockspace)
	}
	return lk, nil
}

func (c *clientConn) handle(m *localproto.Msg) {
	n := c.n
	switch m.Type {
	case localproto.TypeHello:
		c.reply(m, nil, 0, nil)
	case localproto.TypeJoin:
		_, err := n.JoinLockspace(n.ctx, m.Lockspace, LockspaceConfig{LVBLen: int(m.LVBLen)})
		c.reply(m, err, 0, nil)
	case localproto.TypeLeave:
		ls, err := n.Lockspace(m.Lockspace)
		if err == nil {
			ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
			err = ls.Leave(ctx, ReleaseForce(m.Force))
			cancel()
		}
		c.reply(m, err, 0, nil)
	case localproto.TypeList:
		data, err := json.Marshal(n.Lockspaces())
		c.reply(m, err, 0, data)
	case localproto.TypeDump:
		ls, err := n.Lockspace(m.Lockspace)
		var data []byte
		if err == nil {
			data, err = json.Marshal(ls.Dump())
		}
		c.reply(m, err, 0, data)
	case localproto.TypeLock:
		ls, err := n.Lockspace(m.Lockspace)
		if err != nil {
			c.reply(m, err, 0, nil)
			return
		}
		name := m.Lockspace
		req := Request{Name: m.Name, Mode: m.Mode, Flags: m.Flags, LVB: m.LVB, Owner: c.owner,
			OnComplete: func(l *Lock, comp Completion) {
				ev := &localproto.Msg{Type: localproto.TypeCompletion, Lockspace: name, LkID: l.ID(), Result: comp.Result,
					Mode: comp.Mode, SB: comp.Flags, LVB: comp.LVB, LVBSeq: comp.LVBSeq}
				if comp.Final {
					ev.Bits |= localproto.BitFinal
					c.mu.Lock()
					delete(c.locks, lockKey{name, l.ID()})
					c.mu.Unlock()
				}
				c.push(ev)
			}}
		if m.Bits&localproto.BitWantBast != 0 {
			req.OnBlocking = func(l *Lock, mode Mode) {
				c.push(&localproto.Msg{Type: localproto.TypeBlocking, Lockspace: name, LkID: l.ID(), Mode: mode})
			}
		}
		// register before any completion can arrive for it
		c.mu.Lock()
		lk, err := ls.LockAsync(req)
		if err == nil {
			c.locks[lockKey{name, lk.ID()}] = lk
		}
		c.mu.Unlock()
		var id uint32
		if lk != nil {
			id = lk.ID()
		}
		c.reply(m, err, id, nil)
	case localproto.TypeConvert:
		lk, err := c.lock(m)
		if err == nil {
			err = lk.ConvertAsync(m.Mode, m.Flags, m.LVB)
		}
		c.reply(m, err, m.LkID, nil)
	case localproto.TypeUnlock:
		lk, err := c.lock(m)
		if err == nil {
			err = lk.UnlockAsync(m.Flags, m.LVB)
		}
		c.reply(m, err, m.LkID, nil)
	case localproto.TypeCancel:
		lk, err := c.lock(m)
		if err == nil {
			err = lk.Cancel()
		}
		c.reply(m, err, m.LkID, nil)
	default:
		c.reply(m, fmt.Errorf("%w: message type %d is not a request", ErrInvalid, m.Type), 0, nil)
	}
}
