package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"

	"github.com/replicad/replicad/dlm/engine"
	"github.com/replicad/replicad/dlm/localproto"
	"github.com/replicad/replicad/dlm/locktable"
)

// Completion is the outcome of a lock, convert or unlock request.
type Completion struct {
	Result locktable.Result
	Mode   locktable.Mode
	Flags  locktable.SBFlags
	LVB    []byte
	LVBSeq uint32
	Final  bool
}

// Err maps a lock or convert request's completion to an error.
func (c Completion) Err() error {
	switch c.Result {
	case locktable.ResultGranted:
		return nil
	case locktable.ResultWouldBlock:
		return ErrWouldBlock
	case locktable.ResultDeadlock:
		return ErrDeadlock
	case locktable.ResultCancelled:
		return ErrCancelled
	case locktable.ResultUnlocked:
		return ErrUnlocked
	}
	return fmt.Errorf("%w: result %v", ErrServer, c.Result)
}

type key struct {
	ls string
	id uint32
}

// Client is a connection to a node's DLM.
type Client struct {
	conn net.Conn
	done chan struct{}

	wmu sync.Mutex
	w   *bufio.Writer

	mu      sync.Mutex
	req     uint64
	pending map[uint64]chan *localproto.Msg
	locks   map[key]*Lock
	early   map[key][]*localproto.Msg // events that beat the reply naming the lock
	err     error
}

// Dial connects to the DLM socket at path.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connecting to the DLM socket %s (is replicad running?): %w", path, err)
	}
	return New(ctx, conn, "client")
}

// New runs the protocol on an established connection.
func New(ctx context.Context, conn net.Conn, name string) (*Client, error) {
	c := &Client{conn: conn, done: make(chan struct{}), w: bufio.NewWriter(conn),
		pending: map[uint64]chan *localproto.Msg{}, locks: map[key]*Lock{}, early: map[key][]*localproto.Msg{}}
	go c.readLoop()
	if _, err := c.call(ctx, &localproto.Msg{Type: localproto.TypeHello, Name: name}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close closes the connection: the server releases this client's locks
// (PERSISTENT ones become orphans).
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// Done is closed when the connection has ended (Close, or the server went
// away): from then on the client holds no locks.
func (c *Client) Done() <-chan struct{} { return c.done }

func (c *Client) readLoop() {
	defer close(c.done)
	r := bufio.NewReader(c.conn)
	for {
		m, err := localproto.ReadFrame(r, localproto.MaxReply)
		if err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("%w: %v", ErrClosed, err)
			for _, ch := range c.pending {
				close(ch)
			}
			c.pending = map[uint64]chan *localproto.Msg{}
			for _, l := range c.locks {
				l.closeEvents()
			}
			c.mu.Unlock()
			return
		}
		switch m.Type {
		case localproto.TypeReply:
			c.mu.Lock()
			ch := c.pending[m.Req]
			delete(c.pending, m.Req)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		case localproto.TypeCompletion, localproto.TypeBlocking:
			k := key{m.Lockspace, m.LkID}
			c.mu.Lock()
			l := c.locks[k]
			if l == nil {
				c.early[k] = append(c.early[k], m)
				c.mu.Unlock()
				continue
			}
			if m.Type == localproto.TypeCompletion && m.Bits&localproto.BitFinal != 0 {
				delete(c.locks, k)
			}
			c.mu.Unlock()
			l.event(m)
		}
	}
}

func (c *Client) call(ctx context.Context, m *localproto.Msg) (*localproto.Msg, error) {
	ch := make(chan *localproto.Msg, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.req++
	m.Req = c.req
	c.pending[m.Req] = ch
	c.mu.Unlock()
	c.wmu.Lock()
	err := localproto.WriteFrame(c.w, m)
	if err == nil {
		err = c.w.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrClosed, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, c.err
		}
		if r.Code != localproto.CodeOK {
			base := codeErrs[r.Code]
			if base == nil {
				base = ErrServer
			}
			return r, fmt.Errorf("%w: %s", base, r.Err)
		}
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Join joins a lockspace on the node (lvbLen 0 means 32).
func (c *Client) Join(ctx context.Context, ls string, lvbLen int) error {
	_, err := c.call(ctx, &localproto.Msg{Type: localproto.TypeJoin, Lockspace: ls, LVBLen: uint8(lvbLen), Mode: locktable.IV})
	return err
}

// Leave leaves a lockspace with a release-force level 0..3.
func (c *Client) Leave(ctx context.Context, ls string, force int) error {
	_, err := c.call(ctx, &localproto.Msg{Type: localproto.TypeLeave, Lockspace: ls, Force: uint8(force), Mode: locktable.IV})
	return err
}

// Lockspaces lists the node's lockspaces.
func (c *Client) Lockspaces(ctx context.Context) ([]engine.Status, error) {
	r, err := c.call(ctx, &localproto.Msg{Type: localproto.TypeList, Mode: locktable.IV})
	if err != nil {
		return nil, err
	}
	var out []engine.Status
	if err := json.Unmarshal(r.Data, &out); err != nil {
		return nil, fmt.Errorf("%w: list: %v", ErrServer, err)
	}
	return out, nil
}

// Dump returns a lockspace's resources and locks as the node sees them.
func (c *Client) Dump(ctx context.Context, ls string) (engine.Dump, error) {
	var d engine.Dump
	r, err := c.call(ctx, &localproto.Msg{Type: localproto.TypeDump, Lockspace: ls, Mode: locktable.IV})
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(r.Data, &d); err != nil {
		return d, fmt.Errorf("%w: dump: %v", ErrServer, err)
	}
	return d, nil
}

// Lock is one of this client's locks.
type Lock struct {
	c    *Client
	ls   string
	name string
	id   uint32

	mu       sync.Mutex
	comps    chan Completion
	blocking chan locktable.Mode
	closed   bool
}

// ID returns the lock's id on the node.
func (l *Lock) ID() uint32 { return l.id }

// Blocking delivers blocking callbacks (requests waiting for a mode this
// lock blocks) if the lock was requested with wantBlocking; it never
// blocks the client (a full channel drops the callback).
func (l *Lock) Blocking() <-chan locktable.Mode { return l.blocking }

func (l *Lock) event(m *localproto.Msg) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if m.Type == localproto.TypeBlocking {
		select {
		case l.blocking <- m.Mode:
		default:
		}
		return
	}
	l.comps <- Completion{Result: m.Result, Mode: m.Mode, Flags: m.SB, LVB: m.LVB, LVBSeq: m.LVBSeq, Final: m.Bits&localproto.BitFinal != 0}
}

func (l *Lock) closeEvents() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.comps)
	}
}

// LockAsync requests a lock and returns once the node accepted the
// request; the outcome arrives on Completions.
func (c *Client) LockAsync(ctx context.Context, ls, name string, mode locktable.Mode, flags locktable.Flags, lvb []byte, wantBlocking bool) (*Lock, error) {
	m := &localproto.Msg{Type: localproto.TypeLock, Lockspace: ls, Name: name, Mode: mode, Flags: flags, LVB: lvb}
	if wantBlocking {
		m.Bits |= localproto.BitWantBast
	}
	r, err := c.call(ctx, m)
	if err != nil {
		return nil, err
	}
	l := &Lock{c: c, ls: ls, name: name, id: r.LkID, comps: make(chan Completion, 64), blocking: make(chan locktable.Mode, 16)}
	k := key{ls, r.LkID}
	c.mu.Lock()
	early := c.early[k]
	delete(c.early, k)
	final := false
	for _, ev := range early {
		final = final || (ev.Type == localproto.TypeCompletion && ev.Bits&localproto.BitFinal != 0)
	}
	if !final {
		c.locks[k] = l
	}
	c.mu.Unlock()
	for _, ev := range early {
		l.event(ev)
	}
	return l, nil
}

// Completions delivers the lock's completions, in order.
func (l *Lock) Completions() <-chan Completion { return l.comps }

// Lock requests a lock and waits for its completion; if ctx ends first the
// request is cancelled.
func (c *Client) Lock(ctx context.Context, ls, name string, mode locktable.Mode, flags locktable.Flags, lvb []byte) (*Lock, Completion, error) {
	l, err := c.LockAsync(ctx, ls, name, mode, flags, lvb, false)
	if err != nil {
		return nil, Completion{}, err
	}
	comp, err := l.wait(ctx)
	if err != nil {
		return l, comp, err
	}
	return l, comp, comp.Err()
}

func (l *Lock) wait(ctx context.Context) (Completion, error) {
	select {
	case comp, ok := <-l.comps:
		if !ok {
			return Completion{}, l.c.err
		}
		return comp, nil
	case <-ctx.Done():
	}
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := l.Cancel(cctx); err == nil {
		if comp, ok := <-l.comps; ok {
			if comp.Result == locktable.ResultCancelled {
				return comp, ctx.Err()
			}
			return comp, nil
		}
	}
	return Completion{}, ctx.Err()
}

// Convert changes the lock's mode and waits for the outcome.
func (l *Lock) Convert(ctx context.Context, mode locktable.Mode, flags locktable.Flags, lvb []byte) (Completion, error) {
	if _, err := l.c.call(ctx, &localproto.Msg{Type: localproto.TypeConvert, Lockspace: l.ls, LkID: l.id, Mode: mode, Flags: flags, LVB: lvb}); err != nil {
		return Completion{}, err
	}
	comp, err := l.wait(ctx)
	if err != nil {
		return comp, err
	}
	return comp, comp.Err()
}

// Unlock releases the lock and waits until it is gone.
func (l *Lock) Unlock(ctx context.Context, flags locktable.Flags, lvb []byte) error {
	if _, err := l.c.call(ctx, &localproto.Msg{Type: localproto.TypeUnlock, Lockspace: l.ls, LkID: l.id, Flags: flags, LVB: lvb, Mode: locktable.IV}); err != nil {
		return err
	}
	for {
		select {
		case comp, ok := <-l.comps:
			if !ok {
				return l.c.err
			}
			if comp.Final {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Cancel cancels the lock's pending request or conversion.
func (l *Lock) Cancel(ctx context.Context) error {
	_, err := l.c.call(ctx, &localproto.Msg{Type: localproto.TypeCancel, Lockspace: l.ls, LkID: l.id, Mode: locktable.IV})
	return err
}

// RunLocked takes a lock, runs fn while holding it, and releases it when
// fn returns (also when fn fails or ctx ends). It is `repctl lock run`.
func RunLocked(ctx context.Context, c *Client, ls, name string, mode locktable.Mode, flags locktable.Flags, fn func(context.Context) error) error {
	l, _, err := c.Lock(ctx, ls, name, mode, flags&^locktable.Persistent, nil)
	if err != nil {
		return fmt.Errorf("taking %v on %q in %q: %w", mode, name, ls, err)
	}
	ferr := fn(ctx)
	uctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	if err := l.Unlock(uctx, 0, nil); err != nil && ferr == nil {
		return fmt.Errorf("releasing %q: %w", name, err)
	}
	return ferr
}
