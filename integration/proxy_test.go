package integration

import (
	"sync"
	"testing"

	"github.com/klauspost/compress/s2"

	"github.com/replicad/replicad/internal/frameproxy"
	"github.com/replicad/replicad/replication/wire"
)

// corruptingProxy relays replication connections to a node and, when armed,
// flips one byte inside the data of the next Write frame for a given
// offset, going from the dialing node to the accepting one. The other
// direction is relayed untouched.
type corruptingProxy struct {
	p  *frameproxy.Proxy
	mu struct {
		sync.Mutex
		armed     bool
		offset    uint64
		corrupted int
		writes    int // Write frames seen
	}
}

func newCorruptingProxy(t *testing.T, target string) *corruptingProxy {
	t.Helper()
	cp := &corruptingProxy{}
	p, err := frameproxy.New(target, cp.rewrite, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	cp.p = p
	t.Cleanup(p.Close)
	return cp
}

func (cp *corruptingProxy) addr() string { return cp.p.Addr() }

// arm corrupts the next Write frame at offset.
func (cp *corruptingProxy) arm(offset uint64) {
	cp.mu.Lock()
	cp.mu.armed, cp.mu.offset = true, offset
	cp.mu.Unlock()
}

// counts returns how many connections were relayed, Write frames seen and
// frames corrupted.
func (cp *corruptingProxy) counts() (conns, writes, corrupted int) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.p.Conns(), cp.mu.writes, cp.mu.corrupted
}

// rewrite flips a byte in the data of the armed Write frame.
func (cp *corruptingProxy) rewrite(head, payload []byte) []byte {
	typ, flags, _, _ := wire.ParseHeader(head)
	if typ != wire.TypeWrite {
		return append(head, payload...)
	}
	plain := payload
	if flags&wire.FlagS2 != 0 {
		var err error
		if plain, err = s2.Decode(nil, payload); err != nil {
			return append(head, payload...)
		}
	}
	m, err := wire.Decode(wire.Frame{Type: typ, Payload: plain})
	if err != nil {
		return append(head, payload...)
	}
	w := m.(*wire.Write)
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.mu.writes++
	if cp.mu.armed && w.Offset == cp.mu.offset && len(w.Data) > 0 {
		// Flip a byte in the middle of the data: the frame stays well
		// formed, only its crc32c no longer matches.
		plain[wire.WriteFixed+len(w.Data)/2] ^= 0x5a
		if flags&wire.FlagS2 != 0 {
			payload = s2.Encode(nil, plain)
			wire.PutHeader(head, typ, flags, len(payload))
		}
		cp.mu.armed = false
		cp.mu.corrupted++
	}
	return append(head, payload...)
}
