package nbd

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/testcert"
	"github.com/replicad/replicad/nbd/wire"
	"github.com/replicad/replicad/replication"
	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/meta"
)

var ctx = context.Background()

// volumeBackend adapts a replication.Volume, mapping its errors to ours the
// way the daemon does.
type volumeBackend struct{ *replication.Volume }

func (v volumeBackend) WriteAt(ctx context.Context, p []byte, off int64, fua bool) error {
	return mapErr(v.Volume.WriteAt(ctx, p, off, fua))
}

func mapErr(err error) error {
	if errors.Is(err, replication.ErrReadOnly) {
		return errors.Join(ErrPermission, err)
	}
	return err
}

type testExports struct {
	mu      sync.Mutex
	exports map[string]Export
}

func (x *testExports) Export(name string) (Export, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.exports[name]
	return e, ok
}

func (x *testExports) ExportNames() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for n := range x.exports {
		out = append(out, n)
	}
	return out
}

func newVolume(t testing.TB, d disk.Device) *replication.Volume {
	t.Helper()
	g := meta.DefaultGeometry()
	g.ALExtents = 67
	if _, err := replication.CreateMetadata(replication.Devices{Data: d}, replication.CreateOptions{Geometry: g, Standalone: true}); err != nil {
		t.Fatal(err)
	}
	v, _, err := replication.Attach("v", replication.Devices{Data: d}, replication.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

type harness struct {
	t       *testing.T
	s       *Server
	addr    string
	exports *testExports
}

func newHarness(t *testing.T, cfg Config, exps map[string]Export) *harness {
	t.Helper()
	s, err := NewServer(cfg, &testExports{exports: exps})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return &harness{t: t, s: s, addr: l.Addr().String(), exports: s.exports.(*testExports)}
}

func defaultHarness(t *testing.T) (*harness, *replication.Volume) {
	v := newVolume(t, disk.NewMem(32<<20))
	return newHarness(t, DefaultConfig(), map[string]Export{"vol": {Name: "vol", Description: "test volume", Backend: volumeBackend{v}}}), v
}

func (h *harness) dial(export string) *Client {
	h.t.Helper()
	c, err := Dial(ctx, "tcp", h.addr, export, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

// raw opens a connection and completes the greeting with the given client flags.
func (h *harness) raw(clientFlags uint32) net.Conn {
	h.t.Helper()
	nc, err := net.Dial("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	g := make([]byte, wire.GreetingSize)
	if _, err := io.ReadFull(nc, g); err != nil {
		h.t.Fatal(err)
	}
	if !bytes.Equal(g, wire.Greeting()) {
		h.t.Fatalf("greeting % x", g)
	}
	nc.Write(binary.BigEndian.AppendUint32(nil, clientFlags))
	return nc
}

func expectClosed(t *testing.T, nc net.Conn) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(nc); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("server did not close the connection")
		}
	}
}

func infoData(name string, infos ...uint16) []byte {
	be := binary.BigEndian
	d := be.AppendUint32(nil, uint32(len(name)))
	d = append(d, name...)
	d = be.AppendUint16(d, uint16(len(infos)))
	for _, i := range infos {
		d = be.AppendUint16(d, i)
	}
	return d
}

func TestHandshakeOptions(t *testing.T) {
	h, _ := defaultHarness(t)
	nc := h.raw(wire.ClientFixedNewstyle | wire.ClientNoZeroes)
	expect := func(opt, want uint32) []byte {
		t.Helper()
		typ, data, err := readOptionReply(nc, opt)
		if err != nil {
			t.Fatal(err)
		}
		if typ != want {
			t.Fatalf("option %d: reply %#x (%s), want %#x", opt, typ, data, want)
		}
		return data
	}
	// Options we do not implement are UNSUP and negotiation continues.
	for _, opt := range []uint32{wire.OptStructuredReply, wire.OptListMetaContext, wire.OptExtendedHeaders, 999} {
		sendOption(nc, opt, []byte{1, 2, 3})
		expect(opt, wire.RepErrUnsup)
	}
	sendOption(nc, wire.OptStartTLS, nil)
	expect(wire.OptStartTLS, wire.RepErrUnsup) // no TLS configured
	sendOption(nc, wire.OptList, nil)
	if name := expect(wire.OptList, wire.RepServer); string(name[4:]) != "vol" {
		t.Fatalf("LIST server reply %q", name)
	}
	expect(wire.OptList, wire.RepAck)
	sendOption(nc, wire.OptList, []byte{0})
	expect(wire.OptList, wire.RepErrInvalid)
	sendOption(nc, wire.OptInfo, infoData("nope"))
	expect(wire.OptInfo, wire.RepErrUnknown)
	sendOption(nc, wire.OptInfo, []byte{0, 0, 0, 9, 'x'})
	expect(wire.OptInfo, wire.RepErrInvalid)
	sendOption(nc, wire.OptInfo, infoData("vol", wire.InfoName, wire.InfoDescription))
	got := map[uint16][]byte{}
	for {
		typ, data, err := readOptionReply(nc, wire.OptInfo)
		if err != nil {
			t.Fatal(err)
		}
		if typ == wire.RepAck {
			break
		}
		got[binary.BigEndian.Uint16(data)] = data[2:]
	}
	exp := got[wire.InfoExport]
	flags := binary.BigEndian.Uint16(exp[8:])
	want := wire.TFlagHasFlags | wire.TFlagSendFlush | wire.TFlagSendFUA | wire.TFlagSendTrim | wire.TFlagSendWriteZeroes | wire.TFlagCanMultiConn
	if flags != want {
		t.Fatalf("transmission flags %#x, want %#x", flags, want)
	}
	if string(got[wire.InfoName]) != "vol" || string(got[wire.InfoDescription]) != "test volume" || len(got[wire.InfoBlockSize]) != 12 {
		t.Fatalf("infos %v", got)
	}
	// GO, then a READ works on the same connection.
	sendOption(nc, wire.OptGo, infoData("vol"))
	for {
		typ, _, err := readOptionReply(nc, wire.OptGo)
		if err != nil {
			t.Fatal(err)
		}
		if typ == wire.RepAck {
			break
		}
	}
	var req [wire.RequestSize]byte
	wire.PutRequest(&req, wire.Request{Type: wire.CmdRead, Cookie: 77, Length: 512})
	nc.Write(req[:])
	reply := make([]byte, wire.ReplySize+512)
	if _, err := io.ReadFull(nc, reply); err != nil {
		t.Fatal(err)
	}
	if binary.BigEndian.Uint32(reply[4:]) != 0 || binary.BigEndian.Uint64(reply[8:]) != 77 {
		t.Fatalf("read reply % x", reply[:16])
	}
}

func TestExportName(t *testing.T) {
	h, v := defaultHarness(t)
	for _, nz := range []bool{true, false} {
		f := wire.ClientFixedNewstyle
		if nz {
			f |= wire.ClientNoZeroes
		}
		nc := h.raw(f)
		sendOption(nc, wire.OptExportName, []byte("vol"))
		n := 10
		if !nz {
			n += 124
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(nc, b); err != nil {
			t.Fatal(err)
		}
		if int64(binary.BigEndian.Uint64(b)) != v.Size() || binary.BigEndian.Uint16(b[8:])&wire.TFlagSendFlush == 0 {
			t.Fatalf("EXPORT_NAME reply % x", b[:10])
		}
		if !nz && !bytes.Equal(b[10:], make([]byte, 124)) {
			t.Fatal("EXPORT_NAME padding is not zero")
		}
	}
	nc := h.raw(wire.ClientFixedNewstyle)
	sendOption(nc, wire.OptExportName, []byte("nope"))
	expectClosed(t, nc)
}

func TestHandshakeRefusals(t *testing.T) {
	h, _ := defaultHarness(t)
	t.Run("abort is acknowledged then closed", func(t *testing.T) {
		nc := h.raw(wire.ClientFixedNewstyle)
		sendOption(nc, wire.OptAbort, nil)
		if typ, _, err := readOptionReply(nc, wire.OptAbort); err != nil || typ != wire.RepAck {
			t.Fatalf("ABORT reply %#x %v", typ, err)
		}
		expectClosed(t, nc)
	})
	t.Run("unknown client flags close", func(t *testing.T) {
		expectClosed(t, h.raw(wire.ClientFixedNewstyle|1<<7))
	})
	t.Run("non-fixed newstyle closes", func(t *testing.T) {
		expectClosed(t, h.raw(0))
	})
	t.Run("oversized option closes", func(t *testing.T) {
		nc := h.raw(wire.ClientFixedNewstyle)
		be := binary.BigEndian
		b := be.AppendUint64(nil, wire.MagicOption)
		b = be.AppendUint32(b, wire.OptGo)
		b = be.AppendUint32(b, 1<<30)
		nc.Write(b)
		expectClosed(t, nc)
	})
	t.Run("bad option magic closes", func(t *testing.T) {
		nc := h.raw(wire.ClientFixedNewstyle)
		nc.Write(make([]byte, 16))
		expectClosed(t, nc)
	})
	t.Run("silent client times out", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.HandshakeTimeout = 200 * time.Millisecond
		h2 := newHarness(t, cfg, map[string]Export{})
		nc := h2.raw(wire.ClientFixedNewstyle)
		expectClosed(t, nc)
	})
}

func TestRequestErrorsKeepConnection(t *testing.T) {
	h, v := defaultHarness(t)
	c := h.dial("vol")
	size := v.Size()
	cases := []struct {
		name  string
		req   wire.Request
		pay   []byte
		errno uint32
	}{
		{"write past end", wire.Request{Type: wire.CmdWrite, Offset: uint64(size - 1), Length: 2}, []byte{1, 2}, wire.ENOSPC},
		{"write zeroes past end", wire.Request{Type: wire.CmdWriteZeroes, Offset: uint64(size), Length: 1}, nil, wire.ENOSPC},
		{"read past end", wire.Request{Type: wire.CmdRead, Offset: uint64(size), Length: 1}, nil, wire.EINVAL},
		{"trim past end", wire.Request{Type: wire.CmdTrim, Offset: uint64(size) - 1, Length: 2}, nil, wire.EINVAL},
		{"unknown command", wire.Request{Type: 42, Length: 0}, nil, wire.EINVAL},
		{"cache not advertised", wire.Request{Type: wire.CmdCache, Length: 1}, nil, wire.EINVAL},
		{"unknown flag on read", wire.Request{Type: wire.CmdRead, Flags: 1 << 9, Length: 1}, nil, wire.EINVAL},
		{"unknown flag on write (payload still consumed)", wire.Request{Type: wire.CmdWrite, Flags: 1 << 9, Length: 3}, []byte{1, 2, 3}, wire.EINVAL},
		{"zero-length read", wire.Request{Type: wire.CmdRead}, nil, wire.EINVAL},
		{"oversized read", wire.Request{Type: wire.CmdRead, Length: 64 << 20}, nil, wire.EINVAL},
	}
	for _, cs := range cases {
		var dst []byte
		if cs.req.Type == wire.CmdRead && cs.errno == 0 {
			dst = make([]byte, cs.req.Length)
		}
		err := c.Raw(ctx, cs.req, cs.pay, dst)
		var re *RemoteError
		if !errors.As(err, &re) || re.Errno != cs.errno {
			t.Errorf("%s: err %v, want errno %d", cs.name, err, cs.errno)
		}
	}
	// Still serving.
	p := bytes.Repeat([]byte{0x42}, 8192)
	if err := c.WriteAt(ctx, p, 4096, false); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8192)
	if err := c.ReadAt(ctx, got, 4096); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("read after errors: %v", err)
	}
	if err := c.Trim(ctx, 4096, 4096, true); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteZeroes(ctx, 8192, 4096, true, false); err != nil {
		t.Fatal(err)
	}
	c.ReadAt(ctx, got, 4096)
	if !bytes.Equal(got, make([]byte, 8192)) {
		t.Fatal("trim and write-zeroes did not read back as zeroes")
	}
}

func TestReadOnlyExport(t *testing.T) {
	v := newVolume(t, disk.NewMem(16<<20))
	h := newHarness(t, DefaultConfig(), map[string]Export{"ro": {Name: "ro", Backend: volumeBackend{v}, ReadOnly: true}})
	c := h.dial("ro")
	if c.Flags()&wire.TFlagReadOnly == 0 || c.Flags()&wire.TFlagSendTrim != 0 {
		t.Fatalf("read-only export flags %#x", c.Flags())
	}
	var re *RemoteError
	if err := c.WriteAt(ctx, []byte{1}, 0, false); !errors.As(err, &re) || re.Errno != wire.EPERM {
		t.Fatalf("write to read-only export: %v", err)
	}
	if err := c.Trim(ctx, 0, 1, false); !errors.As(err, &re) || re.Errno != wire.EPERM {
		t.Fatalf("trim on read-only export: %v", err)
	}
	if err := c.ReadAt(ctx, make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDiskErrorIsEIO(t *testing.T) {
	f := disk.NewFaulty(disk.NewMem(16 << 20))
	v := newVolume(t, f)
	h := newHarness(t, DefaultConfig(), map[string]Export{"vol": {Name: "vol", Backend: volumeBackend{v}}})
	c := h.dial("vol")
	f.Inject(disk.Rule{Ops: disk.OpRead, Off: 0, Len: 4096, Times: 1})
	var re *RemoteError
	if err := c.ReadAt(ctx, make([]byte, 512), 0); !errors.As(err, &re) || re.Errno != wire.EIO {
		t.Fatalf("read with a disk error: %v, want EIO", err)
	}
	if err := c.ReadAt(ctx, make([]byte, 512), 0); err != nil {
		t.Fatalf("connection unusable after EIO: %v", err)
	}
	f.Inject(disk.Rule{Ops: disk.OpSync})
	if err := c.Flush(ctx); !errors.As(err, &re) || re.Errno != wire.EIO {
		t.Fatalf("flush with a failing sync: %v, want EIO", err)
	}
}

// Garbage on one connection closes that connection only.
func TestGarbageClosesOnlyThatConnection(t *testing.T) {
	h, _ := defaultHarness(t)
	good := h.dial("vol")
	for _, garbage := range [][]byte{
		bytes.Repeat([]byte{0xff}, wire.RequestSize), // bad magic
		func() []byte { // write bigger than the advertised maximum
			var b [wire.RequestSize]byte
			wire.PutRequest(&b, wire.Request{Type: wire.CmdWrite, Length: 1 << 31})
			return b[:]
		}(),
		func() []byte { // truncated request
			var b [wire.RequestSize]byte
			wire.PutRequest(&b, wire.Request{Type: wire.CmdRead, Length: 1})
			return b[:11]
		}(),
	} {
		bad := h.dial("vol")
		bad.wmu.Lock()
		bad.w.Write(garbage)
		bad.w.Flush()
		if len(garbage) < wire.RequestSize {
			bad.nc.(*net.TCPConn).CloseWrite()
		}
		bad.wmu.Unlock()
		<-bad.readerDone
		if err := good.ReadAt(ctx, make([]byte, 4096), 0); err != nil {
			t.Fatalf("healthy connection broken by another's garbage: %v", err)
		}
	}
}

// gate blocks ReadAt at chosen offsets until released.
type gate struct {
	Backend
	mu      sync.Mutex
	blocked map[int64]chan struct{}
	entered chan int64
}

func (g *gate) ReadAt(ctx context.Context, p []byte, off int64) error {
	g.mu.Lock()
	ch := g.blocked[off]
	g.mu.Unlock()
	if ch != nil {
		g.entered <- off
		<-ch
	}
	return g.Backend.ReadAt(ctx, p, off)
}

func (g *gate) WriteAt(ctx context.Context, p []byte, off int64, fua bool) error {
	g.mu.Lock()
	ch := g.blocked[off]
	g.mu.Unlock()
	if ch != nil {
		g.entered <- off
		<-ch
	}
	return g.Backend.WriteAt(ctx, p, off, fua)
}

// Replies come in completion order, matched by cookie.
func TestOutOfOrderReplies(t *testing.T) {
	v := newVolume(t, disk.NewMem(16<<20))
	g := &gate{Backend: volumeBackend{v}, blocked: map[int64]chan struct{}{0: make(chan struct{})}, entered: make(chan int64, 4)}
	h := newHarness(t, DefaultConfig(), map[string]Export{"vol": {Name: "vol", Backend: g}})
	c := h.dial("vol")
	slow := make(chan error, 1)
	go func() { slow <- c.ReadAt(ctx, make([]byte, 4096), 0) }()
	<-g.entered
	if err := c.ReadAt(ctx, make([]byte, 4096), 8192); err != nil {
		t.Fatalf("second read did not complete while the first was blocked: %v", err)
	}
	select {
	case <-slow:
		t.Fatal("blocked read completed early")
	default:
	}
	close(g.blocked[0])
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
}

// DISC lets requests in flight finish and reply before closing.
func TestDiscWaitsForInflight(t *testing.T) {
	v := newVolume(t, disk.NewMem(16<<20))
	g := &gate{Backend: volumeBackend{v}, blocked: map[int64]chan struct{}{4096: make(chan struct{})}, entered: make(chan int64, 1)}
	h := newHarness(t, DefaultConfig(), map[string]Export{"vol": {Name: "vol", Backend: g}})
	c := h.dial("vol")
	res := make(chan error, 1)
	go func() { res <- c.WriteAt(ctx, []byte("late"), 4096, false) }()
	<-g.entered
	var disc [wire.RequestSize]byte
	wire.PutRequest(&disc, wire.Request{Type: wire.CmdDisc})
	c.wmu.Lock()
	c.w.Write(disc[:])
	c.w.Flush()
	c.wmu.Unlock()
	close(g.blocked[4096])
	if err := <-res; err != nil {
		t.Fatalf("write in flight at DISC: %v", err)
	}
	got := make([]byte, 4)
	v.ReadAt(ctx, got, 4096)
	if string(got) != "late" {
		t.Fatal("write in flight at DISC was lost")
	}
}

// TestFlushCoversEveryConnection checks the durability contract with the
// crash-simulating disk: a write replied to on connection A is durable once
// connection B's FLUSH is replied to; a FUA write is durable on its own.
func TestFlushCoversEveryConnection(t *testing.T) {
	d := disk.NewCrash(32 << 20)
	v := newVolume(t, d)
	h := newHarness(t, DefaultConfig(), map[string]Export{"vol": {Name: "vol", Backend: volumeBackend{v}}})
	a, b := h.dial("vol"), h.dial("vol")
	if a.Flags()&wire.TFlagCanMultiConn == 0 {
		t.Fatal("CAN_MULTI_CONN not advertised")
	}
	pa := bytes.Repeat([]byte{0xa1}, 65536)
	pf := bytes.Repeat([]byte{0xf1}, 4096)
	if err := a.WriteAt(ctx, pa, 1<<20, false); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteAt(ctx, pf, 8<<20, true); err != nil {
		t.Fatal(err)
	}
	check := func(c *disk.Crash, off int64, want []byte, what string) {
		t.Helper()
		got := make([]byte, len(want))
		disk.ReadFull(c, got, off)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s not durable after a power cut", what)
		}
	}
	check(d.CrashClone(nil), 8<<20, pf, "FUA write")
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	check(d.CrashClone(nil), 1<<20, pa, "write replied on A before B's FLUSH")
}

func TestCloseExport(t *testing.T) {
	v1 := newVolume(t, disk.NewMem(16<<20))
	v2 := newVolume(t, disk.NewMem(16<<20))
	h := newHarness(t, DefaultConfig(), map[string]Export{
		"one": {Name: "one", Backend: volumeBackend{v1}},
		"two": {Name: "two", Backend: volumeBackend{v2}},
	})
	c1, c2 := h.dial("one"), h.dial("two")
	if n := h.s.Connections(); n["one"] != 1 || n["two"] != 1 {
		t.Fatalf("connections %v", n)
	}
	h.s.CloseExport("one")
	if err := c1.ReadAt(ctx, make([]byte, 1), 0); err == nil {
		t.Fatal("connection to a closed export still works")
	}
	if err := c2.ReadAt(ctx, make([]byte, 1), 0); err != nil {
		t.Fatalf("other export affected: %v", err)
	}
}

func TestStartTLS(t *testing.T) {
	ca := testcert.NewCA(t, "replicad-test")
	cert, pool := ca.Issue(t, "127.0.0.1"), ca.Pool()
	v := newVolume(t, disk.NewMem(16<<20))
	cfg := DefaultConfig()
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	cfg.RequireTLS = true
	h := newHarness(t, cfg, map[string]Export{"vol": {Name: "vol", Backend: volumeBackend{v}}})
	if _, err := Dial(ctx, "tcp", h.addr, "vol", nil); err == nil {
		t.Fatal("plaintext GO accepted by a TLS-only server")
	}
	c, err := Dial(ctx, "tcp", h.addr, "vol", &DialOptions{TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := []byte("over tls")
	if err := c.WriteAt(ctx, p, 0, true); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(p))
	if err := c.ReadAt(ctx, got, 0); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("TLS round trip: %v", err)
	}
}

func TestManyInflightOnManyConnections(t *testing.T) {
	h, _ := defaultHarness(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for conn := 0; conn < 4; conn++ {
		c := h.dial("vol")
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func(base int64) {
				defer wg.Done()
				p := bytes.Repeat([]byte{byte(base)}, 4096)
				for i := int64(0); i < 20; i++ {
					off := (base*20 + i) * 4096
					if err := c.WriteAt(ctx, p, off, i%5 == 0); err != nil {
						errs <- err
						return
					}
					got := make([]byte, 4096)
					if err := c.ReadAt(ctx, got, off); err != nil || !bytes.Equal(got, p) {
						errs <- errors.New("read back differs")
						return
					}
				}
			}(int64(conn*16 + g))
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// declining serves no-wait reads of even 4 KiB blocks and declines odd ones,
// so a connection uses both the reader's own reads and request goroutines.
type declining struct{ volumeBackend }

func (d declining) ReadAtNoWait(p []byte, off int64) (bool, error) {
	if off/4096%2 == 1 {
		return false, nil
	}
	return d.volumeBackend.ReadAtNoWait(p, off)
}

var _ NoWaitReader = declining{}

// TestReaderServedAndHandedOffRequests: reads served by the reader itself
// (NoWaitReader) and by request goroutines after it declined, and large
// writes served by the goroutine that read their payload, all complete
// with the right data and replies, many at once on one connection.
func TestReaderServedAndHandedOffRequests(t *testing.T) {
	v := newVolume(t, disk.NewMem(32<<20))
	h := newHarness(t, DefaultConfig(), map[string]Export{"vol": {Name: "vol", Backend: declining{volumeBackend{v}}}})
	c := h.dial("vol")
	const big = 1 << 20
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := bytes.Repeat([]byte{byte(i + 1)}, big)
			if err := c.WriteAt(ctx, p, int64(i)*big, i == 0); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	for i := range 8 {
		for blk := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got := make([]byte, 4096)
				off := int64(i)*big + int64(blk)*4096
				if err := c.ReadAt(ctx, got, off); err != nil {
					errs <- err
				} else if !bytes.Equal(got, bytes.Repeat([]byte{byte(i + 1)}, 4096)) {
					errs <- errors.New("read back differs at " + string(rune('0'+i)))
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// barrierWriter is an AsyncWriter whose writes complete only once n of
// them have started, as a replicated volume's writes wait for their peers:
// served one after the other (start, wait, start, wait) a batch of them
// would never finish.
type barrierWriter struct {
	volumeBackend
	n       int
	mu      sync.Mutex
	started int
	all     chan struct{}
}

func (b *barrierWriter) StartWriteAt(ctx context.Context, p []byte, off int64) func() error {
	err := b.volumeBackend.WriteAt(ctx, p, off, false)
	b.mu.Lock()
	if b.started++; b.started == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	return func() error {
		if err != nil {
			return err
		}
		select {
		case <-b.all:
			return nil
		case <-time.After(5 * time.Second):
			return errors.New("waited for the other writes of its batch: they were served one by one")
		}
	}
}

func (b *barrierWriter) WriteAt(ctx context.Context, p []byte, off int64, fua bool) error {
	return b.StartWriteAt(ctx, p, off)()
}

var _ AsyncWriter = (*barrierWriter)(nil)

// TestAsyncWriterBatchWaitsTogether: small writes that arrive in one burst
// are served together by one goroutine, which starts them one after the
// other and then waits for them together: writes that wait on something
// remote (a replicated volume's peers) overlap their waits.
func TestAsyncWriterBatchWaitsTogether(t *testing.T) {
	const n = 8
	b := &barrierWriter{volumeBackend: volumeBackend{newVolume(t, disk.NewMem(16<<20))}, n: n, all: make(chan struct{})}
	h := newHarness(t, DefaultConfig(), map[string]Export{"vol": {Name: "vol", Backend: b}})
	nc := h.raw(wire.ClientFixedNewstyle | wire.ClientNoZeroes)
	sendOption(nc, wire.OptExportName, []byte("vol"))
	if _, err := io.ReadFull(nc, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	// one burst: n write requests with their payloads in one socket write
	var burst []byte
	for i := range n {
		var hdr [wire.RequestSize]byte
		wire.PutRequest(&hdr, wire.Request{Type: wire.CmdWrite, Cookie: uint64(i), Offset: uint64(i) * 4096, Length: 512})
		burst = append(append(burst, hdr[:]...), bytes.Repeat([]byte{byte(i + 1)}, 512)...)
	}
	if _, err := nc.Write(burst); err != nil {
		t.Fatal(err)
	}
	for range n {
		var rep [16]byte
		if _, err := io.ReadFull(nc, rep[:]); err != nil {
			t.Fatalf("reply: %v (writes served one by one wait for each other until the backend gives up)", err)
		}
		if errno := binary.BigEndian.Uint32(rep[4:]); errno != 0 {
			t.Fatalf("write %d: errno %d", binary.BigEndian.Uint64(rep[8:]), errno)
		}
	}
	for i := range n {
		got := make([]byte, 512)
		if err := b.ReadAt(ctx, got, int64(i)*4096); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{byte(i + 1)}, 512)) {
			t.Fatalf("block %d: %v, %x…", i, err, got[:4])
		}
	}
}
