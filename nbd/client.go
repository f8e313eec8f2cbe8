package nbd

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/replicad/replicad/nbd/wire"
)

// Client is a minimal NBD client: fixed newstyle, GO (falling back to
// nothing else), simple replies, many requests in flight. replicad's tools
// and tests use it; hosts use the kernel or libnbd.
type Client struct {
	nc    net.Conn
	size  int64
	flags uint16

	wmu sync.Mutex // serialises request writes
	w   *bufio.Writer

	mu struct {
		sync.Mutex
		next    uint64
		pending map[uint64]*call
		err     error // set when the reader stops
	}
	readerDone chan struct{}
}

type call struct {
	buf  []byte // READ destination
	done chan uint32
}

// RemoteError is an error reply from the server.
type RemoteError struct {
	Cmd   string
	Errno uint32
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("nbd %s: server replied error %d (%s)", e.Cmd, e.Errno, errnoName(e.Errno))
}

func errnoName(e uint32) string {
	switch e {
	case wire.EPERM:
		return "EPERM"
	case wire.EIO:
		return "EIO"
	case wire.ENOMEM:
		return "ENOMEM"
	case wire.EINVAL:
		return "EINVAL"
	case wire.ENOSPC:
		return "ENOSPC"
	case wire.EOVERFLOW:
		return "EOVERFLOW"
	case wire.ENOTSUP:
		return "ENOTSUP"
	case wire.ESHUTDOWN:
		return "ESHUTDOWN"
	}
	return "unknown"
}

// DialOptions configure Dial.
type DialOptions struct {
	// TLS, if set, negotiates STARTTLS with this configuration.
	TLS *tls.Config
}

// Dial connects to export on network/addr ("tcp" or "unix").
func Dial(ctx context.Context, network, addr, export string, opts *DialOptions) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	c, err := handshake(nc, export, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.nc.SetDeadline(time.Time{})
	go c.reader()
	return c, nil
}

func handshake(nc net.Conn, export string, opts *DialOptions) (*Client, error) {
	var g [wire.GreetingSize]byte
	if _, err := io.ReadFull(nc, g[:]); err != nil {
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	be := binary.BigEndian
	if be.Uint64(g[0:]) != wire.MagicNBD || be.Uint64(g[8:]) != wire.MagicOption {
		return nil, fmt.Errorf("not a fixed-newstyle NBD server: %w", wire.ErrBadMagic)
	}
	if _, err := nc.Write(be.AppendUint32(nil, wire.ClientFixedNewstyle|wire.ClientNoZeroes)); err != nil {
		return nil, err
	}
	if opts != nil && opts.TLS != nil {
		if err := sendOption(nc, wire.OptStartTLS, nil); err != nil {
			return nil, err
		}
		typ, data, err := readOptionReply(nc, wire.OptStartTLS)
		if err != nil {
			return nil, err
		}
		if typ != wire.RepAck {
			return nil, fmt.Errorf("server refused STARTTLS: %s", replyError(typ, data))
		}
		tc := tls.Client(nc, opts.TLS)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		nc = tc
	}
	data := be.AppendUint32(nil, uint32(len(export)))
	data = append(data, export...)
	data = be.AppendUint16(data, 0)
	if err := sendOption(nc, wire.OptGo, data); err != nil {
		return nil, err
	}
	c := &Client{nc: nc, size: -1, w: bufio.NewWriterSize(nc, 64<<10), readerDone: make(chan struct{})}
	c.mu.pending = make(map[uint64]*call)
	for {
		typ, data, err := readOptionReply(nc, wire.OptGo)
		if err != nil {
			return nil, err
		}
		switch typ {
		case wire.RepAck:
			if c.size < 0 {
				return nil, errors.New("server acknowledged GO without INFO_EXPORT")
			}
			return c, nil
		case wire.RepInfo:
			if len(data) >= 12 && be.Uint16(data) == wire.InfoExport {
				c.size = int64(be.Uint64(data[2:]))
				c.flags = be.Uint16(data[10:])
			}
		default:
			return nil, fmt.Errorf("export %q: %s", export, replyError(typ, data))
		}
	}
}

func replyError(typ uint32, data []byte) string {
	return fmt.Sprintf("option error %#x: %s", typ, data)
}

func sendOption(w io.Writer, id uint32, data []byte) error {
	be := binary.BigEndian
	b := be.AppendUint64(nil, wire.MagicOption)
	b = be.AppendUint32(b, id)
	b = be.AppendUint32(b, uint32(len(data)))
	_, err := w.Write(append(b, data...))
	return err
}

func readOptionReply(r io.Reader, opt uint32) (uint32, []byte, error) {
	var h [20]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, fmt.Errorf("read option reply: %w", err)
	}
	be := binary.BigEndian
	if be.Uint64(h[0:]) != wire.MagicReply || be.Uint32(h[8:]) != opt {
		return 0, nil, fmt.Errorf("unexpected option reply: %w", wire.ErrBadMagic)
	}
	n := be.Uint32(h[16:])
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("option reply of %d bytes", n)
	}
	data := make([]byte, n)
	_, err := io.ReadFull(r, data)
	return be.Uint32(h[12:]), data, err
}

// Size is the export size.
func (c *Client) Size() int64 { return c.size }

// Flags are the transmission flags.
func (c *Client) Flags() uint16 { return c.flags }

func (c *Client) reader() {
	defer close(c.readerDone)
	r := bufio.NewReaderSize(c.nc, 256<<10)
	var h [wire.ReplySize]byte
	var err error
	for {
		if _, err = io.ReadFull(r, h[:]); err != nil {
			break
		}
		be := binary.BigEndian
		if be.Uint32(h[0:]) != wire.MagicSimpleReply {
			err = fmt.Errorf("reply: %w", wire.ErrBadMagic)
			break
		}
		errno, cookie := be.Uint32(h[4:]), be.Uint64(h[8:])
		c.mu.Lock()
		cl := c.mu.pending[cookie]
		delete(c.mu.pending, cookie)
		c.mu.Unlock()
		if cl == nil {
			err = fmt.Errorf("reply for unknown cookie %d", cookie)
			break
		}
		if errno == 0 && cl.buf != nil {
			if _, err = io.ReadFull(r, cl.buf); err != nil {
				// Its payload cut off: this call fails with the rest.
				c.mu.Lock()
				c.mu.pending[cookie] = cl
				c.mu.Unlock()
				break
			}
		}
		cl.done <- errno
	}
	c.mu.Lock()
	if c.mu.err == nil {
		c.mu.err = fmt.Errorf("nbd connection lost: %w", err)
	}
	for k, cl := range c.mu.pending {
		close(cl.done)
		delete(c.mu.pending, k)
	}
	c.mu.Unlock()
}

func (c *Client) do(ctx context.Context, req wire.Request, payload, dst []byte) error {
	cl := &call{buf: dst, done: make(chan uint32, 1)}
	c.mu.Lock()
	if c.mu.err != nil {
		err := c.mu.err
		c.mu.Unlock()
		return err
	}
	c.mu.next++
	req.Cookie = c.mu.next
	c.mu.pending[req.Cookie] = cl
	c.mu.Unlock()
	var h [wire.RequestSize]byte
	wire.PutRequest(&h, req)
	c.wmu.Lock()
	c.w.Write(h[:])
	c.w.Write(payload)
	err := c.w.Flush()
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	select {
	case errno, ok := <-cl.done:
		if !ok {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.mu.err
		}
		if errno != 0 {
			return &RemoteError{Cmd: wire.CommandName(req.Type), Errno: errno}
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReadAt reads len(p) bytes at off.
func (c *Client) ReadAt(ctx context.Context, p []byte, off int64) error {
	return c.do(ctx, wire.Request{Type: wire.CmdRead, Offset: uint64(off), Length: uint32(len(p))}, nil, p)
}

// WriteAt writes p at off, with FUA if fua.
func (c *Client) WriteAt(ctx context.Context, p []byte, off int64, fua bool) error {
	return c.do(ctx, wire.Request{Type: wire.CmdWrite, Flags: fuaFlag(fua), Offset: uint64(off), Length: uint32(len(p))}, p, nil)
}

// Flush asks for every replied write to be durable.
func (c *Client) Flush(ctx context.Context) error {
	return c.do(ctx, wire.Request{Type: wire.CmdFlush}, nil, nil)
}

// Trim discards a range.
func (c *Client) Trim(ctx context.Context, off, n int64, fua bool) error {
	return c.do(ctx, wire.Request{Type: wire.CmdTrim, Flags: fuaFlag(fua), Offset: uint64(off), Length: uint32(n)}, nil, nil)
}

// WriteZeroes zeroes a range; noHole keeps it allocated.
func (c *Client) WriteZeroes(ctx context.Context, off, n int64, noHole, fua bool) error {
	f := fuaFlag(fua)
	if noHole {
		f |= wire.CmdFlagNoHole
	}
	return c.do(ctx, wire.Request{Type: wire.CmdWriteZeroes, Flags: f, Offset: uint64(off), Length: uint32(n)}, nil, nil)
}

// Raw sends an arbitrary request (for tests of the server's checks).
func (c *Client) Raw(ctx context.Context, req wire.Request, payload, dst []byte) error {
	return c.do(ctx, req, payload, dst)
}

func fuaFlag(fua bool) uint16 {
	if fua {
		return wire.CmdFlagFUA
	}
	return 0
}

// Close sends DISC and closes the connection once every reply is in.
func (c *Client) Close() error {
	var h [wire.RequestSize]byte
	wire.PutRequest(&h, wire.Request{Type: wire.CmdDisc})
	c.wmu.Lock()
	c.w.Write(h[:])
	c.w.Flush()
	c.wmu.Unlock()
	<-c.readerDone
	return c.nc.Close()
}
