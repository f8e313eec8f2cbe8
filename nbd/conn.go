package nbd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"github.com/replicad/replicad/nbd/wire"
)

var errTooManyFiles = syscall.EMFILE

// conn is one client connection.
type conn struct {
	s    *Server
	nc   net.Conn // the raw socket; TLS, if any, runs on top of it
	done chan struct{}

	mu struct {
		sync.Mutex
		export  string
		aborted bool
	}
	ctx    context.Context
	cancel context.CancelFunc
}

// request is a request in flight; pooled.
type request struct {
	wire.Request
	buf   []byte
	errno uint32
}

var requestPool = sync.Pool{New: func() any { return new(request) }}

func (c *conn) exportName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.export
}

// choose records the export the client chose (negotiation.chosen).
func (c *conn) choose(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.export = name
	return !c.mu.aborted
}

// abort closes the socket: the reader fails, requests in flight finish,
// then the connection ends.
func (c *conn) abort() {
	c.mu.Lock()
	c.mu.aborted = true
	c.mu.Unlock()
	// Closing the raw socket also ends a TLS session on top of it.
	c.nc.Close()
}

func (c *conn) run() {
	log := c.s.log.With("remote", c.nc.RemoteAddr().String())
	exp, nc, r, err := c.s.negotiate(c.nc, c.choose)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || err == errAbort {
			log.Debug("nbd negotiation ended", "err", err)
		} else {
			log.Info("nbd negotiation failed; connection closed", "err", err)
		}
		c.nc.Close()
		return
	}
	c.mu.Lock()
	aborted := c.mu.aborted
	c.mu.Unlock()
	if aborted {
		nc.Close()
		return
	}
	log = log.With("export", exp.Name)
	log.Debug("nbd transmission starts")
	c.ctx, c.cancel = context.WithCancel(context.Background())
	defer c.cancel()
	c.transmit(exp, nc, r, log)
}

// transmit is the transmission phase: this goroutine reads requests, each
// runs in its own goroutine, and one writer sends replies.
func (c *conn) transmit(exp Export, nc net.Conn, r *bufio.Reader, log *slog.Logger) {
	maxPayload := c.s.cfg.MaxPayload
	size := uint64(exp.Backend.Size())
	replies := make(chan *request, c.s.cfg.MaxInflight+1)
	sem := make(chan struct{}, c.s.cfg.MaxInflight)
	var inflight sync.WaitGroup
	writerDone := make(chan struct{})
	go c.writer(nc, replies, writerDone)

	var hdr [wire.RequestSize]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				log.Debug("nbd connection ended", "err", err)
			}
			break
		}
		req, err := wire.ParseRequest(&hdr)
		if err != nil {
			log.Warn("nbd framing error; closing connection", "err", err)
			break
		}
		if req.Type == wire.CmdDisc {
			break
		}
		rq := requestPool.Get().(*request)
		rq.Request, rq.errno, rq.buf = req, 0, nil
		if req.Type == wire.CmdWrite {
			if req.Length > maxPayload {
				log.Warn("nbd write larger than the advertised maximum; closing connection",
					"length", req.Length, "max", maxPayload)
				requestPool.Put(rq)
				break
			}
			rq.buf = getBuf(req.Length)
			if _, err := io.ReadFull(r, rq.buf); err != nil {
				log.Debug("nbd connection ended inside a write payload", "err", err)
				putBuf(rq.buf)
				requestPool.Put(rq)
				break
			}
		}
		if errno := wire.Check(req, size, maxPayload, exp.ReadOnly); errno != 0 {
			rq.errno = errno
			replies <- rq
			continue
		}
		sem <- struct{}{}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			c.serve(exp.Backend, rq)
			<-sem
			replies <- rq
		}()
	}
	inflight.Wait()
	close(replies)
	<-writerDone
	nc.Close()
}

func (c *conn) serve(b Backend, rq *request) {
	off, n := int64(rq.Offset), int64(rq.Length)
	fua := rq.Flags&wire.CmdFlagFUA != 0
	var err error
	switch rq.Type {
	case wire.CmdRead:
		rq.buf = getBuf(rq.Length)
		err = b.ReadAt(c.ctx, rq.buf, off)
	case wire.CmdWrite:
		err = b.WriteAt(c.ctx, rq.buf, off, fua)
	case wire.CmdFlush:
		err = b.Flush(c.ctx)
	case wire.CmdTrim:
		err = b.WriteZeroes(c.ctx, off, n, true, fua)
	case wire.CmdWriteZeroes:
		err = b.WriteZeroes(c.ctx, off, n, rq.Flags&wire.CmdFlagNoHole == 0, fua)
	}
	rq.errno = errnoOf(err)
}

func errnoOf(err error) uint32 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrPermission):
		return wire.EPERM
	case errors.Is(err, ErrNoSpace):
		return wire.ENOSPC
	case errors.Is(err, ErrInvalid):
		return wire.EINVAL
	case errors.Is(err, ErrShutdown), errors.Is(err, context.Canceled):
		return wire.ESHUTDOWN
	}
	return wire.EIO
}

// writer sends replies in completion order, flushing when none is waiting.
// After a write error it keeps draining so request goroutines never block.
func (c *conn) writer(nc net.Conn, replies <-chan *request, done chan<- struct{}) {
	defer close(done)
	w := bufio.NewWriterSize(nc, 256<<10)
	var hdr [wire.ReplySize]byte
	broken := false
	for rq := range replies {
		if !broken {
			wire.PutSimpleReply(hdr[:], rq.errno, rq.Cookie)
			w.Write(hdr[:])
			if rq.Type == wire.CmdRead && rq.errno == 0 {
				w.Write(rq.buf)
			}
			if len(replies) == 0 {
				if err := w.Flush(); err != nil {
					broken = true
					nc.Close()
				}
			}
		}
		if rq.buf != nil {
			putBuf(rq.buf)
			rq.buf = nil
		}
		requestPool.Put(rq)
	}
	if !broken {
		w.Flush()
	}
}
