package nbd

import (
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
