package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/nbd"
)

// Helpers shared by the replication tests (split brain, link faults,
// partitions, the multi-node demo).

const blockSize = 4096

// startPair starts a two-node cluster, creates and brings up the volume on
// both, forces the first node primary and waits for the initial sync.
func startPair(t *testing.T, s clusterSpec) (primary, secondary *node) {
	t.Helper()
	s.Nodes = 2
	nodes := newCluster(t, s)
	a, b := nodes[0], nodes[1]
	upPair(a, b, s.Volume)
	return a, b
}

// upPair starts a and b (configured), creates and brings up the volume on
// both, forces a primary and waits for the initial sync.
func upPair(a, b *node, volume string) {
	a.t.Helper()
	a.start()
	b.start()
	a.create(volume)
	b.create(volume)
	a.mustRepctl("primary", "--force", volume)
	a.waitSync(volume)
}

// peer returns the volume's only peer as this node sees it.
func (n *node) peer(volume string) control.Peer {
	n.t.Helper()
	v := n.volume(volume)
	if len(v.Peers) != 1 {
		n.t.Fatalf("volume %s has %d peers, want 1: %+v", volume, len(v.Peers), v.Peers)
	}
	return v.Peers[0]
}

// waitUntil polls cond until it holds; on timeout the test fails with what
// cond last said.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last state: %s", timeout, what, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPeer waits until the node's peer for volume satisfies cond.
func (n *node) waitPeer(volume, what string, cond func(control.Peer) bool) control.Peer {
	n.t.Helper()
	return waitValue(n, what, func() control.Peer { return n.peer(volume) }, cond)
}

// waitValue waits (30 s at most) until get's result satisfies cond.
func waitValue[T any](n *node, what string, get func() T, cond func(T) bool) T {
	n.t.Helper()
	var v T
	waitUntil(n.t, n.name()+": "+what, 30*time.Second, func() (bool, string) {
		v = get()
		return cond(v), fmt.Sprintf("%+v", v)
	})
	return v
}

func (n *node) name() string {
	st, err := n.status()
	if err != nil {
		return n.dir
	}
	return st.Node.Name
}

// dial opens an NBD connection to the node's TCP export of volume, or its
// unix-socket export if it has no TCP one.
func (n *node) dial(volume string) *nbd.Client {
	n.t.Helper()
	network, addr := "", ""
	for _, e := range n.volume(volume).Exports {
		if strings.HasPrefix(e, "nbd://") && network == "" {
			network, addr = "tcp", hostport(n.t, e, volume)
		}
		if u, err := url.Parse(e); err == nil && u.Scheme == "nbd+unix" && network == "" {
			network, addr = "unix", u.Query().Get("socket")
		}
	}
	if network == "" {
		n.t.Fatalf("volume %s has no export: %+v", volume, n.volume(volume))
	}
	c, err := nbd.Dial(context.Background(), network, addr, volume, nil)
	if err != nil {
		n.t.Fatalf("nbd connect to %s %s: %v", network, addr, err)
	}
	n.t.Cleanup(func() { c.Close() })
	return c
}

// block is 4 KiB that names its writer and block number, so a reader can
// tell whose write a block holds.
func block(tag byte, blk int64) []byte {
	b := bytes.Repeat([]byte{tag}, blockSize)
	binary.LittleEndian.PutUint64(b[8:], uint64(blk))
	return b
}

// writeBlocks writes block(tag, blk) at each block number and flushes.
func (n *node) writeBlocks(volume string, tag byte, blocks ...int64) {
	n.t.Helper()
	c := n.dial(volume)
	ctx := context.Background()
	for _, blk := range blocks {
		if err := c.WriteAt(ctx, block(tag, blk), blk*blockSize, false); err != nil {
			n.t.Fatalf("write block %d on %s: %v", blk, n.name(), err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		n.t.Fatal(err)
	}
	c.Close()
}

// tagOf reads a block and returns the tag of the write it holds (0 for a
// block no test wrote).
func (n *node) tagOf(volume string, blk int64) byte {
	n.t.Helper()
	c := n.dial(volume)
	defer c.Close()
	buf := make([]byte, blockSize)
	if err := c.ReadAt(context.Background(), buf, blk*blockSize); err != nil {
		n.t.Fatalf("read block %d on %s: %v", blk, n.name(), err)
	}
	if !bytes.Equal(buf, block(buf[0], blk)) && !bytes.Equal(buf, make([]byte, blockSize)) {
		n.t.Fatalf("block %d on %s holds neither a test write nor zeroes: %x…", blk, n.name(), buf[:16])
	}
	return buf[0]
}

// exportSum reads the whole export and returns its sha256.
func (n *node) exportSum(volume string) [sha256.Size]byte {
	n.t.Helper()
	c := n.dial(volume)
	defer c.Close()
	h := sha256.New()
	buf := make([]byte, 4<<20)
	for off := int64(0); off < c.Size(); off += int64(len(buf)) {
		p := buf[:min(int64(len(buf)), c.Size()-off)]
		if err := c.ReadAt(context.Background(), p, off); err != nil {
			n.t.Fatalf("read %s on %s at %d: %v", volume, n.name(), off, err)
		}
		h.Write(p)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

// sameData fails the test unless every node's export of volume reads the same.
func sameData(t *testing.T, volume string, nodes ...*node) {
	t.Helper()
	want := nodes[0].exportSum(volume)
	for _, n := range nodes[1:] {
		if got := n.exportSum(volume); got != want {
			t.Fatalf("volume %s differs: %s has sha256 %x, %s has %x", volume, nodes[0].name(), want[:8], n.name(), got[:8])
		}
	}
}

// statusJSON is `repctl status --json` decoded.
func (n *node) statusJSON() control.Status {
	n.t.Helper()
	var st control.Status
	jsonUnmarshal(n.t, n.mustRepctl("--json", "status"), &st)
	return st
}

// eventStream is `repctl --json events` running against a node.
type eventStream struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	evs  []control.Event
	done chan struct{}
}

func (n *node) events(args ...string) *eventStream {
	n.t.Helper()
	argv := append(append(append([]string{}, n.wrap...), bin("repctl"), "--socket", n.socket, "--json", "events"), args...)
	s := &eventStream{t: n.t, cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	var stderr bytes.Buffer
	s.cmd.Stderr = &stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(s.stop)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e control.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				s.t.Errorf("repctl events printed %q: %v", sc.Text(), err)
				continue
			}
			s.mu.Lock()
			s.evs = append(s.evs, e)
			s.mu.Unlock()
		}
	}()
	// The stream is open once the daemon answered; give it a moment.
	time.Sleep(200 * time.Millisecond)
	select {
	case <-s.done: // a stream does not end by itself: repctl failed
		err := s.cmd.Wait()
		n.t.Fatalf("repctl events %q ended at once (%v): %s", args, err, stderr.String())
	default:
	}
	return s
}

func (s *eventStream) stop() {
	s.cmd.Process.Kill()
	<-s.done
	s.cmd.Wait()
}

// all returns the events received so far.
func (s *eventStream) all() []control.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]control.Event(nil), s.evs...)
}

// wait waits for an event that match accepts and returns it.
func (s *eventStream) wait(what string, match func(control.Event) bool) control.Event {
	s.t.Helper()
	var found control.Event
	waitUntil(s.t, "event: "+what, 30*time.Second, func() (bool, string) {
		evs := s.all()
		for _, e := range evs {
			if match(e) {
				found = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events: %+v", len(evs), evs)
	})
	return found
}
