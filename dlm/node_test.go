package dlm

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicad/replicad/dlm/engine"
	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/internal/peerauth"
)

var testSecret = []byte("correct horse battery staple")

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testCluster struct {
	t     testing.TB
	nodes map[NodeID]*Node
	logs  map[NodeID]*syncBuffer
	addrs map[NodeID]string
	tune  func(NodeID, *Config) // adjusts a node's config after the defaults; may be nil
}

// startCluster starts n nodes on loopback with short timers; secrets maps
// a node to a different secret.
func startCluster(t testing.TB, n int, secrets map[NodeID][]byte) *testCluster {
	t.Helper()
	return startTunedCluster(t, n, secrets, nil)
}

// startTunedCluster is startCluster with tune applied to each node's config.
func startTunedCluster(t testing.TB, n int, secrets map[NodeID][]byte, tune func(NodeID, *Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, nodes: map[NodeID]*Node{}, logs: map[NodeID]*syncBuffer{}, addrs: map[NodeID]string{}, tune: tune}
	lns := map[NodeID]net.Listener{}
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[NodeID(i)] = ln
		tc.addrs[NodeID(i)] = ln.Addr().String()
	}
	for i := 1; i <= n; i++ {
		tc.start(NodeID(i), lns[NodeID(i)], secrets)
	}
	t.Cleanup(func() {
		for _, nd := range tc.nodes {
			nd.Close()
		}
	})
	return tc
}

func (tc *testCluster) start(id NodeID, ln net.Listener, secrets map[NodeID][]byte) {
	tc.t.Helper()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", tc.addrs[id]); err != nil {
			tc.t.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.NodeID = id
	cfg.Listener = ln
	cfg.Peers = map[NodeID]string{}
	for p, a := range tc.addrs {
		if p != id {
			cfg.Peers[p] = a
		}
	}
	cfg.Secret = testSecret
	if s, ok := secrets[id]; ok {
		cfg.Secret = s
	}
	cfg.TickInterval = 10 * time.Millisecond
	cfg.HeartbeatInterval = 50 * time.Millisecond
	cfg.DeadTimeout = 500 * time.Millisecond
	cfg.RedialInterval = 50 * time.Millisecond
	if tc.tune != nil {
		tc.tune(id, &cfg)
	}
	buf := &syncBuffer{}
	tc.logs[id] = buf
	cfg.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	nd, err := NewNode(cfg)
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.nodes[id] = nd
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// eventually polls cond until it holds (the deadline is only a guard
// against hanging; nothing is asserted about how long it takes).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (tc *testCluster) joinAll(name string) map[NodeID]*Lockspace {
	tc.t.Helper()
	out := map[NodeID]*Lockspace{}
	for id, nd := range tc.nodes {
		ls, err := nd.JoinLockspace(ctx(tc.t), name, LockspaceConfig{})
		if err != nil {
			tc.t.Fatal(err)
		}
		out[id] = ls
	}
	for id, ls := range out {
		eventually(tc.t, "lockspace running with every member", func() bool {
			st := ls.Status()
			return st.State == engine.StateRunning && len(st.Members) == len(tc.nodes)
		})
		_ = id
	}
	return out
}

func TestNodesLockConvertUnlockWithCallbacks(t *testing.T) {
	tc := startCluster(t, 3, nil)
	ls := tc.joinAll("ls1")
	bast := make(chan Mode, 4)
	a, c, err := ls[1].Lock(ctx(t), Request{Name: "res", Mode: locktable.EX,
		OnBlocking: func(l *Lock, m Mode) { bast <- m }})
	if err != nil || c.Mode != locktable.EX {
		t.Fatalf("lock: %+v %v", c, err)
	}
	got := make(chan Completion, 1)
	b, err := ls[2].LockAsync(Request{Name: "res", Mode: locktable.PR, OnComplete: func(l *Lock, c Completion) { got <- c }})
	if err != nil {
		t.Fatal(err)
	}
	if m := <-bast; m != locktable.PR {
		t.Fatalf("bast mode %v, want PR", m)
	}
	// the blocked holder yields by converting down, from its callback's
	// point of view (a new call into the API)
	if c, err := a.Convert(ctx(t), locktable.NL, 0, nil); err != nil || c.Mode != locktable.NL {
		t.Fatalf("convert: %+v %v", c, err)
	}
	if c := <-got; c.Result != locktable.ResultGranted || c.Mode != locktable.PR {
		t.Fatalf("waiter completion %+v", c)
	}
	if err := b.Unlock(ctx(t), 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Unlock(ctx(t), 0, nil); err != nil {
		t.Fatal(err)
	}
	// NOQUEUE miss is reported as ErrWouldBlock
	x, _, err := ls[3].Lock(ctx(t), Request{Name: "r2", Mode: locktable.EX})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ls[1].Lock(ctx(t), Request{Name: "r2", Mode: locktable.PR, Flags: locktable.NoQueue}); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("NOQUEUE miss: %v", err)
	}
	// a context that ends cancels the request
	short, cancel := context.WithTimeout(ctx(t), 50*time.Millisecond)
	defer cancel()
	if _, _, err := ls[2].Lock(short, Request{Name: "r2", Mode: locktable.PR}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled wait: %v", err)
	}
	x.Unlock(ctx(t), 0, nil)
}

func TestWrongSecretIsRefusedAndLogged(t *testing.T) {
	tc := startCluster(t, 2, map[NodeID][]byte{2: []byte("not the cluster secret at all")})
	eventually(t, "a logged refusal", func() bool {
		return strings.Contains(tc.logs[1].String(), "authentication failed") &&
			strings.Contains(tc.logs[2].String(), "authentication failed")
	})
	if !strings.Contains(tc.logs[1].String()+tc.logs[2].String(), "shared secrets differ") {
		t.Fatalf("refusal does not say why:\n%s\n%s", tc.logs[1], tc.logs[2])
	}
	ls, err := tc.nodes[1].JoinLockspace(ctx(t), "x", LockspaceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if st := ls.Status(); st.State == engine.StateRunning {
		t.Fatalf("lockspace ran without hearing from an unauthenticated peer: %+v", st)
	}
	if _, err := NewNode(Config{NodeID: 1}); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("missing secret accepted: %v", err)
	}
}

// Kill the master of a busy resource: the survivors keep their locks;
// the waiting request is granted only after the fence is confirmed.
func TestKilledMasterWaitsForFenceConfirmation(t *testing.T) {
	tc := startCluster(t, 3, nil)
	ls := tc.joinAll("ls")
	if _, _, err := ls[1].Lock(ctx(t), Request{Name: "busy", Mode: locktable.EX}); err != nil {
		t.Fatal(err)
	}
	held, _, err := ls[3].Lock(ctx(t), Request{Name: "other", Mode: locktable.PR})
	if err != nil {
		t.Fatal(err)
	}
	granted := make(chan Completion, 2)
	if _, err := ls[2].LockAsync(Request{Name: "busy", Mode: locktable.PR, OnComplete: func(_ *Lock, c Completion) { granted <- c }}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the waiter queued on the master", func() bool {
		d := ls[1].Dump()
		for _, r := range d.Resources {
			if r.Name == "busy" && len(r.Waiting) == 1 {
				return true
			}
		}
		return false
	})
	tc.nodes[1].Close() // the process dies: no leave
	eventually(t, "wait fencing on the survivors", func() bool {
		return ls[2].Status().State == engine.StateWaitFencing && ls[3].Status().State == engine.StateWaitFencing
	})
	select {
	case c := <-granted:
		t.Fatalf("granted before the fence was confirmed: %+v", c)
	default:
	}
	if err := tc.nodes[3].ConfirmFenced(1); err != nil {
		t.Fatal(err)
	}
	c := <-granted
	if c.Result != locktable.ResultGranted || c.Mode != locktable.PR {
		t.Fatalf("after fencing: %+v", c)
	}
	if held.Mode() != locktable.PR {
		t.Fatalf("survivor's lock mode %v", held.Mode())
	}
	if err := held.Unlock(ctx(t), 0, nil); err != nil {
		t.Fatalf("survivor's lock (same id %x) after recovery: %v", held.ID(), err)
	}
	if err := tc.nodes[2].ConfirmFenced(2); err == nil {
		t.Fatal("confirming a live node's fence succeeded")
	}
}

// A survivor can learn a member's failure from another survivor before its
// own membership notices it (its dead timeout has not run out): its
// lockspaces already wait for the fence, so a fence confirmation given on
// it must be taken and must open recovery. Node 3 never notices by itself
// here (a dead timeout far longer than the test), which makes the order
// that raced in TestKilledMasterWaitsForFenceConfirmation certain.
func TestFenceConfirmationOfFailureLearnedFromPeer(t *testing.T) {
	tc := startTunedCluster(t, 3, nil, func(id NodeID, c *Config) {
		if id == 3 {
			c.DeadTimeout = time.Hour
		}
	})
	ls := tc.joinAll("ls")
	if _, _, err := ls[1].Lock(ctx(t), Request{Name: "busy", Mode: locktable.EX}); err != nil {
		t.Fatal(err)
	}
	granted := make(chan Completion, 1)
	if _, err := ls[3].LockAsync(Request{Name: "busy", Mode: locktable.PR, OnComplete: func(_ *Lock, c Completion) { granted <- c }}); err != nil {
		t.Fatal(err)
	}
	tc.nodes[1].Close()
	eventually(t, "wait fencing on node 3, learned from node 2", func() bool {
		return ls[3].Status().State == engine.StateWaitFencing
	})
	if cs := tc.nodes[3].Membership().State(); !slices.Contains(cs.Alive, 1) || cs.Failed[1] != 0 {
		t.Fatalf("node 3's own membership noticed the failure; the test does not test the learned-failure order: %+v", cs)
	}
	if err := tc.nodes[3].ConfirmFenced(1); err != nil {
		t.Fatalf("confirming a failure node 3's lockspace waits for: %v", err)
	}
	if c := <-granted; c.Result != locktable.ResultGranted {
		t.Fatalf("after fencing: %+v", c)
	}
	if err := tc.nodes[3].ConfirmFenced(1); !errors.Is(err, ErrNotFailed) {
		t.Fatalf("second confirmation of the same failure: %v, want ErrNotFailed", err)
	}
}

// A fence recorded by the fencing subsystem before the survivors notice
// the failure covers it: recovery goes ahead without a confirmation.
func TestFenceRecordedBeforeFailureIsNoticed(t *testing.T) {
	// a dead timeout long enough that the fence is recorded first
	tc := startTunedCluster(t, 3, nil, func(_ NodeID, c *Config) { c.DeadTimeout = 2 * time.Second })
	ls := tc.joinAll("ls")
	if _, _, err := ls[1].Lock(ctx(t), Request{Name: "busy", Mode: locktable.EX}); err != nil {
		t.Fatal(err)
	}
	granted := make(chan Completion, 1)
	if _, err := ls[2].LockAsync(Request{Name: "busy", Mode: locktable.PR, OnComplete: func(_ *Lock, c Completion) { granted <- c }}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the waiter queued on the master", func() bool {
		d := ls[1].Dump()
		return len(d.Resources) == 1 && len(d.Resources[0].Waiting) == 1
	})
	fenceStart := time.Now()
	tc.nodes[1].Close() // switched off by the fence
	if cs := tc.nodes[2].Membership().State(); cs.Failed[1] != 0 {
		t.Fatalf("the failure was noticed before the test recorded the fence: %+v", cs)
	}
	if err := tc.nodes[2].RecordFenced(1, fenceStart); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-granted:
		if c.Result != locktable.ResultGranted {
			t.Fatalf("after the fence: %+v", c)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("not granted after the fence was recorded: %+v", ls[2].Status())
	}
}

func TestOwnerCloseReleasesAndOrphansPersistent(t *testing.T) {
	tc := startCluster(t, 2, nil)
	ls := tc.joinAll("ls")
	o := tc.nodes[1].NewOwner("client")
	if _, _, err := ls[1].Lock(ctx(t), Request{Name: "plain", Mode: locktable.EX, Owner: o}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ls[1].Lock(ctx(t), Request{Name: "kept", Mode: locktable.PW, Flags: locktable.Persistent, Owner: o}); err != nil {
		t.Fatal(err)
	}
	o.Close()
	// the plain lock is released: another node gets it
	if _, _, err := ls[2].Lock(ctx(t), Request{Name: "plain", Mode: locktable.EX}); err != nil {
		t.Fatal(err)
	}
	// the persistent one is an orphan, still held
	if _, _, err := ls[2].Lock(ctx(t), Request{Name: "kept", Mode: locktable.PR, Flags: locktable.NoQueue}); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("orphan not held: %v", err)
	}
	o2 := tc.nodes[1].NewOwner("client2")
	if _, _, err := ls[1].Lock(ctx(t), Request{Name: "kept", Mode: locktable.EX, Flags: locktable.Orphan, Owner: o2}); !errors.Is(err, ErrOrphanMode) {
		t.Fatalf("adopting with the wrong mode: %v", err)
	}
	if _, _, err := ls[1].Lock(ctx(t), Request{Name: "nothing", Mode: locktable.EX, Flags: locktable.Orphan, Owner: o2}); !errors.Is(err, ErrNoOrphan) {
		t.Fatalf("adopting nothing: %v", err)
	}
	lk, c, err := ls[1].Lock(ctx(t), Request{Name: "kept", Mode: locktable.PW, Flags: locktable.Orphan, Owner: o2})
	if err != nil || c.Result != locktable.ResultGranted || c.Mode != locktable.PW {
		t.Fatalf("adoption: %+v %v", c, err)
	}
	if err := lk.Unlock(ctx(t), 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ls[2].Lock(ctx(t), Request{Name: "kept", Mode: locktable.PR}); err != nil {
		t.Fatal(err)
	}
}

func TestLeaveAndRejoin(t *testing.T) {
	tc := startCluster(t, 2, nil)
	ls := tc.joinAll("ls")
	if _, _, err := ls[2].Lock(ctx(t), Request{Name: "r", Mode: locktable.EX}); err != nil {
		t.Fatal(err)
	}
	if err := ls[2].Leave(ctx(t), ReleaseIfNoLocal); !errors.Is(err, ErrBusy) {
		t.Fatalf("leave with local locks at force 1: %v", err)
	}
	if err := ls[2].Leave(ctx(t), ReleaseAll); err != nil {
		t.Fatal(err)
	}
	// no fencing needed: node 1 runs on alone and gets the lock
	eventually(t, "node 1 alone", func() bool {
		st := ls[1].Status()
		return st.State == engine.StateRunning && len(st.Members) == 1
	})
	if _, _, err := ls[1].Lock(ctx(t), Request{Name: "r", Mode: locktable.EX}); err != nil {
		t.Fatal(err)
	}
	again, err := tc.nodes[2].JoinLockspace(ctx(t), "ls", LockspaceConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.WaitRunning(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := again.Lock(ctx(t), Request{Name: "r", Mode: locktable.PR, Flags: locktable.NoQueue}); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("rejoined node got a lock node 1 holds EX: %v", err)
	}
}

// A peer that authenticates and then sends garbage is disconnected; the
// node and the rest of the cluster keep working.
func TestGarbageFromAnAuthenticatedPeerClosesItsConnection(t *testing.T) {
	tc := startCluster(t, 2, nil)
	ls := tc.joinAll("ls")
	conn, err := net.Dial("tcp", tc.addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := peerauth.Handshake(conn, peerauth.Config{Secret: testSecret, Purpose: Purpose, Node: 2, Incarnation: 1}, peerauth.Dialer); err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte{0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef})
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection left open after garbage")
	}
	eventually(t, "the refusal logged", func() bool { return strings.Contains(tc.logs[1].String(), "malformed") })
	if _, _, err := ls[1].Lock(ctx(t), Request{Name: "r", Mode: locktable.EX}); err != nil {
		t.Fatal(err)
	}
}

// A lock's callbacks stay in order when some run user code and some only
// wake a synchronous caller: a Convert's completion, which needs no
// dispatcher, still waits for the lock's blocking callback queued before
// it to return.
func TestSyncCompletionWaitsForQueuedCallbacks(t *testing.T) {
	tc := startCluster(t, 1, nil)
	ls := tc.joinAll("order")[1]
	if err := ls.WaitRunning(ctx(t)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	inBast, release := make(chan struct{}), make(chan struct{})
	a, _, err := ls.Lock(ctx(t), Request{Name: "r", Mode: locktable.EX, OnBlocking: func(*Lock, Mode) {
		close(inBast)
		<-release
		note("bast returned")
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ls.LockAsync(Request{Name: "r", Mode: locktable.PR, OnComplete: func(*Lock, Completion) {}}); err != nil {
		t.Fatal(err)
	}
	<-inBast
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := a.Convert(ctx(t), locktable.NL, 0, nil); err != nil {
			t.Error(err)
		}
		note("convert returned")
	}()
	time.Sleep(20 * time.Millisecond) // room for a wrong early return
	close(release)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(order, ", "); got != "bast returned, convert returned" {
		t.Fatalf("order %q", got)
	}
}

// BenchmarkLocalLockUnlock is the sync case of bench/dlm's local
// measurement, with allocations per lock+unlock pair.
func BenchmarkLocalLockUnlock(b *testing.B) {
	tc := startCluster(b, 1, nil)
	ls, err := tc.nodes[1].JoinLockspace(context.Background(), "bench", LockspaceConfig{})
	if err != nil {
		b.Fatal(err)
	}
	if err := ls.WaitRunning(context.Background()); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		lk, _, err := ls.Lock(ctx, Request{Name: "r", Mode: locktable.EX})
		if err != nil {
			b.Fatal(err)
		}
		if err := lk.Unlock(ctx, 0, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// Unlock with CANCEL cancels a pending request and returns; the request's
// own completion says cancelled.
func TestUnlockWithCancelReturns(t *testing.T) {
	tc := startCluster(t, 1, nil)
	ls := tc.joinAll("cancel")[1]
	if _, _, err := ls.Lock(ctx(t), Request{Name: "r", Mode: locktable.EX}); err != nil {
		t.Fatal(err)
	}
	got := make(chan Completion, 1)
	b, err := ls.LockAsync(Request{Name: "r", Mode: locktable.EX, OnComplete: func(_ *Lock, c Completion) { got <- c }})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx(t), locktable.Cancel, nil); err != nil {
		t.Fatal(err)
	}
	if c := <-got; c.Result != locktable.ResultCancelled {
		t.Fatalf("completion %+v, want cancelled", c)
	}
}
