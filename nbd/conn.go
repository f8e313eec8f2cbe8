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
	next  *request // the rest of a batch of replies sent to the writer at once
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

// transmit is the transmission phase. One goroutine at a time is the
// reader: it reads requests and serves the reads the backend can answer
// from memory itself (NoWaitReader). A large write is served by the reader
// that read its payload, which first starts a new reader (handOffBytes);
// small writes read in one burst are served together by one goroutine
// (maxWriteBatch); every other request runs in its own goroutine. Replies
// of requests served by the reader go out in one batch when the next
// header is not buffered yet (the reader is about to wait for the
// socket), written by the reader itself if no one is writing, else by the
// writer goroutine (replyOut): a burst of cached reads costs one socket
// write, not one per request.
//
// sem bounds the requests received and not yet answered (MaxInflight): the
// writer releases a slot after writing a reply, so the replies channel,
// one slot each, never fills and the reader never waits for the socket's
// send side while it holds replies.
func (c *conn) transmit(exp Export, nc net.Conn, r *bufio.Reader, log *slog.Logger) {
	maxPayload := c.s.cfg.MaxPayload
	size := uint64(exp.Backend.Size())
	nw, _ := exp.Backend.(NoWaitReader)
	aw, _ := exp.Backend.(AsyncWriter)
	replies := make(chan *request, c.s.cfg.MaxInflight)
	sem := make(chan struct{}, c.s.cfg.MaxInflight)
	var inflight sync.WaitGroup
	writerDone := make(chan struct{})
	out := &replyOut{nc: nc, w: bufio.NewWriterSize(nc, 256<<10), sem: sem}
	go out.writer(replies, writerDone)

	// The batch of replies served on this goroutine, oldest first.
	var head, tail *request
	var batchBytes int
	// Small writes read in one burst, served together by one goroutine
	// that sends their replies together: a goroutine and a reply write
	// per burst instead of per request.
	var whead, wtail *request
	var wn int
	dispatch := func() {
		if whead == nil {
			return
		}
		batch := whead
		whead, wtail, wn = nil, nil, 0
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			if aw != nil {
				var waits [maxWriteBatch]func() error
				i := 0
				for rq := batch; rq != nil; rq = rq.next {
					waits[i] = aw.StartWriteAt(c.ctx, rq.buf, int64(rq.Offset))
					i++
				}
				i = 0
				for rq := batch; rq != nil; rq = rq.next {
					rq.errno = errnoOf(waits[i]())
					i++
				}
			} else {
				for rq := batch; rq != nil; rq = rq.next {
					c.serve(exp.Backend, rq)
				}
			}
			out.send(batch, replies)
		}()
	}
	// push hands on what the reader holds, before it may wait.
	push := func() {
		dispatch()
		if head == nil {
			return
		}
		out.send(head, replies)
		head, tail, batchBytes = nil, nil, 0
	}
	add := func(rq *request) {
		if tail == nil {
			head = rq
		} else {
			tail.next = rq
		}
		tail = rq
		if rq.errno == 0 && rq.Type == wire.CmdRead {
			batchBytes += len(rq.buf)
		}
		// Large read replies go out at once, so that sending one overlaps
		// reading the next.
		if batchBytes >= maxBatchBytes {
			push()
		}
	}
	acquire := func() {
		select {
		case sem <- struct{}{}:
		default:
			push() // the writer frees slots only for replies it has
			sem <- struct{}{}
		}
	}

	readerDone := make(chan struct{})
	var hdr [wire.RequestSize]byte
	var read func()
	read = func() {
		for {
			if r.Buffered() < wire.RequestSize {
				push()
			}
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
			rq.Request, rq.errno, rq.buf, rq.next = req, 0, nil, nil
			if req.Type == wire.CmdWrite {
				if req.Length > maxPayload {
					log.Warn("nbd write larger than the advertised maximum; closing connection",
						"length", req.Length, "max", maxPayload)
					requestPool.Put(rq)
					break
				}
				if r.Buffered() < int(req.Length) {
					push()
				}
				rq.buf = getBuf(req.Length)
				if _, err := io.ReadFull(r, rq.buf); err != nil {
					log.Debug("nbd connection ended inside a write payload", "err", err)
					putBuf(rq.buf)
					requestPool.Put(rq)
					break
				}
			}
			acquire()
			if errno := wire.Check(req, size, maxPayload, exp.ReadOnly); errno != 0 {
				rq.errno = errno
				add(rq)
				continue
			}
			if req.Type == wire.CmdRead && nw != nil {
				rq.buf = getBuf(req.Length)
				done, err := nw.ReadAtNoWait(rq.buf, int64(req.Offset))
				if done || err != nil {
					rq.errno = errnoOf(err)
					add(rq)
					continue
				}
			}
			if req.Type == wire.CmdWrite && req.Length < handOffBytes && req.Flags&wire.CmdFlagFUA == 0 {
				if wtail == nil {
					whead = rq
				} else {
					wtail.next = rq
				}
				wtail = rq
				if wn++; wn >= maxWriteBatch {
					dispatch()
				}
				continue
			}
			inflight.Add(1)
			if req.Type == wire.CmdWrite && req.Length >= handOffBytes {
				// Hand reading on to a new goroutine and write the payload
				// from here, while it is in this CPU's cache.
				go read()
				defer inflight.Done()
				c.serve(exp.Backend, rq)
				replies <- rq
				return
			}
			go func() {
				defer inflight.Done()
				c.serve(exp.Backend, rq)
				replies <- rq
			}()
		}
		push()
		close(readerDone)
	}
	read()
	<-readerDone
	inflight.Wait()
	close(replies)
	<-writerDone
	nc.Close()
}

// handOffBytes is the smallest write payload whose request is served by
// the goroutine that read it (reading goes on in a new one), as nbdkit's
// threads do: a large payload is written while still in this CPU's cache
// instead of being pulled to another. Smaller writes go to a new
// goroutine, so the reader moves on at once.
const handOffBytes = 256 << 10

// maxWriteBatch is the most small writes one goroutine serves together.
const maxWriteBatch = 16

// maxBatchBytes is how much read data the reader collects before handing
// its replies to the writer without waiting for the end of the burst.
const maxBatchBytes = 256 << 10

func (c *conn) serve(b Backend, rq *request) {
	off, n := int64(rq.Offset), int64(rq.Length)
	fua := rq.Flags&wire.CmdFlagFUA != 0
	var err error
	switch rq.Type {
	case wire.CmdRead:
		if rq.buf == nil { // else allocated for a ReadAtNoWait that declined
			rq.buf = getBuf(rq.Length)
		}
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

// replyOut is a connection's reply side. Replies are written under mu by
// the writer goroutine, or by the reader itself when mu is free (as each
// of nbdkit's threads sends its own reply): a burst of cached reads then
// costs no wakeup of the writer. Replies go out in any order (NBD matches
// them by cookie).
type replyOut struct {
	mu     sync.Mutex
	nc     net.Conn
	w      *bufio.Writer
	hdr    [wire.ReplySize]byte
	broken bool            // a write failed: replies are dropped
	sem    <-chan struct{} // a slot per request received and not answered
}

// putLocked buffers a batch of replies, recycles their requests and frees
// their slots in sem.
func (o *replyOut) putLocked(batch *request) {
	for rq := batch; rq != nil; {
		if !o.broken {
			wire.PutSimpleReply(o.hdr[:], rq.errno, rq.Cookie)
			o.w.Write(o.hdr[:])
			if rq.Type == wire.CmdRead && rq.errno == 0 {
				o.w.Write(rq.buf)
			}
		}
		if rq.buf != nil {
			putBuf(rq.buf)
			rq.buf = nil
		}
		next := rq.next
		rq.next = nil
		requestPool.Put(rq)
		rq = next
		<-o.sem
	}
}

// send writes a batch of replies from this goroutine if nobody is
// writing (without waking the writer), else hands it to the writer.
func (o *replyOut) send(batch *request, replies chan<- *request) {
	if o.mu.TryLock() {
		o.putLocked(batch)
		o.flushLocked()
		o.mu.Unlock()
		return
	}
	replies <- batch
}

func (o *replyOut) flushLocked() {
	if o.broken {
		return
	}
	if err := o.w.Flush(); err != nil {
		o.broken = true
		o.nc.Close()
	}
}

// writer sends the replies handed to it, flushing when none is waiting.
// After a write error it keeps draining so that neither request
// goroutines nor the reader block.
func (o *replyOut) writer(replies <-chan *request, done chan<- struct{}) {
	defer close(done)
	for batch := range replies {
		o.mu.Lock()
		o.putLocked(batch)
		if len(replies) == 0 {
			o.flushLocked()
		}
		o.mu.Unlock()
	}
	o.mu.Lock()
	o.flushLocked()
	o.mu.Unlock()
}
