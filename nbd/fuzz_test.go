package nbd

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/replicad/replicad/nbd/wire"
	"github.com/replicad/replicad/replication/disk"
)

// FuzzServerConnection feeds arbitrary client bytes to a live server over a
// pipe: the server must neither panic nor hang, whatever arrives, in the
// handshake or (after a valid GO prefix) in transmission.
func FuzzServerConnection(f *testing.F) {
	be := func(b []byte, v uint32) []byte { return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v)) }
	goPrefix := be(nil, wire.ClientFixedNewstyle)
	goPrefix = append(goPrefix, 'I', 'H', 'A', 'V', 'E', 'O', 'P', 'T')
	goPrefix = be(goPrefix, wire.OptGo)
	goPrefix = be(goPrefix, 9)
	goPrefix = append(goPrefix, infoData("vol")...)
	var req [wire.RequestSize]byte
	wire.PutRequest(&req, wire.Request{Type: wire.CmdWrite, Length: 4})
	f.Add(append(append([]byte(nil), goPrefix...), append(req[:], 1, 2, 3, 4)...))
	f.Add([]byte{0, 0, 0, 1, 'I', 'H'})
	v := newVolume(f, disk.NewMem(1<<20))
	s, err := NewServer(DefaultConfig(), &testExports{exports: map[string]Export{"vol": {Name: "vol", Backend: volumeBackend{v}}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		c := &conn{s: s, nc: server, done: make(chan struct{})}
		go func() { c.run(); close(c.done) }()
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		client.Write(in)
		client.Close()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Fatal("server connection did not end after the client went away")
		}
	})
}

// recorder keeps what is read through it.
type recorder struct {
	net.Conn
	got []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.got = append(r.got, p[:n]...)
	return n, err
}

// FuzzClient feeds arbitrary server bytes to the client: its handshake and
// a read must end with a result or an error, never a panic or a hang. The
// seed is what a real server sends for the handshake and a 512-byte read.
func FuzzClient(f *testing.F) {
	v := newVolume(f, disk.NewMem(1<<20))
	s, err := NewServer(DefaultConfig(), &testExports{exports: map[string]Export{"vol": {Name: "vol", Backend: volumeBackend{v}}}})
	if err != nil {
		f.Fatal(err)
	}
	client, server := net.Pipe()
	c := &conn{s: s, nc: server, done: make(chan struct{})}
	go func() { c.run(); close(c.done) }()
	rec := &recorder{Conn: client}
	cl, err := handshake(rec, "vol", nil)
	if err != nil {
		f.Fatal(err)
	}
	go cl.reader()
	if err := cl.ReadAt(f.Context(), make([]byte, 512), 4096); err != nil {
		f.Fatal(err)
	}
	cl.Close()
	<-c.done
	f.Add(rec.got)
	f.Add(rec.got[:len(rec.got)-100])
	f.Add([]byte("NBDMAGICIHAVEOPT\x00\x03"))

	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		defer client.Close()
		go io.Copy(io.Discard, server)
		go func() {
			server.Write(in)
			server.Close()
		}()
		client.SetDeadline(time.Now().Add(5 * time.Second))
		cl, err := handshake(client, "vol", nil)
		if err != nil {
			return
		}
		go cl.reader()
		// No deadline on the read: the lost connection alone must end it.
		done := make(chan error, 1)
		go func() { done <- cl.ReadAt(context.Background(), make([]byte, 512), 4096) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a read on a connection whose server went away did not end")
		}
		cl.Close()
	})
}
