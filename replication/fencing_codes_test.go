package replication

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/meta"
	"github.com/replicad/replicad/replication/uuid"
)

// fenceOutcome is what a fence-peer exit code leads to on a primary that
// lost its peer (engine.FenceResult's contract, DRBD's drbd_nl.c reading).
type fenceOutcome struct {
	peerOutdated bool // the peer's slot is marked Outdated
	frozen       bool // I/O stays suspended after the handler returned
	selfOutdated bool // this node's disk becomes Outdated (code 6)
}

func wantFenceOutcome(policy engine.FencePolicy, code int) fenceOutcome {
	stonith := policy == engine.ResourceAndStonith
	switch code {
	case engine.FencePeerInconsistent, engine.FencePeerOutdated, engine.FencePeerFenced:
		// Settled: the peer cannot become primary without a resync from
		// this node (an Inconsistent one neither).
		return fenceOutcome{peerOutdated: true}
	case engine.FencePeerUnreachable:
		// Assumed dead under resource-only; under resource-and-stonith an
		// unreachable peer is not a fenced one: I/O stays frozen.
		return fenceOutcome{peerOutdated: !stonith, frozen: stonith}
	case engine.FencePeerIsPrimary:
		return fenceOutcome{selfOutdated: true, frozen: stonith}
	}
	return fenceOutcome{frozen: stonith}
}

// goroutineID is the calling goroutine's id, from its stack header.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := bytes.Fields(buf) // "goroutine", id, "[running]:"
	return string(f[1])
}

// blockedIn reports whether goroutine id is parked inside function fn.
func blockedIn(id, fn string) bool {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.HasPrefix(g, []byte("goroutine "+id+" [")) {
			return bytes.Contains(g, []byte(fn))
		}
	}
	return false
}

// pendingWrite is a WriteAt running in its own goroutine.
type pendingWrite struct {
	id   chan string
	done chan error
}

func startWrite(n *testNode, off int64) *pendingWrite {
	w := &pendingWrite{id: make(chan string, 1), done: make(chan error, 1)}
	go func() {
		w.id <- goroutineID()
		w.done <- n.rep.WriteAt(ctx, bytes.Repeat([]byte{0xfe}, 4096), off, false)
	}()
	return w
}

// waitFrozen waits until the write is parked waiting for I/O to thaw; it
// fails the test if the write completes instead.
func (w *pendingWrite) waitFrozen(t *testing.T) {
	t.Helper()
	id := <-w.id
	w.id <- id
	waitFor(t, "the write to wait for frozen I/O", func() bool {
		select {
		case err := <-w.done:
			t.Fatalf("the write completed (%v) while the fence-peer handler runs under resource-and-stonith", err)
		default:
		}
		return blockedIn(id, "(*Replicator).waitThawed")
	})
}

// wait waits for the write's result (the deadline only turns a hang into
// a failure).
func (w *pendingWrite) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case err := <-w.done:
		if err != nil {
			t.Fatalf("%s: the write failed: %v", what, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: the write did not complete", what)
	}
}

// TestFencePeerExitCodes: a primary under a fencing policy loses its
// peer; the fence-peer handler runs (blocked on a fifo the test writes
// the exit code to) and its exit code decides, per engine.FenceResult and
// docs/fencing.md (DRBD's codes): 3 the peer is Inconsistent, 4 outdated
// and 7 fenced (each marked Outdated, settled), 5
// unreachable (assumed dead under resource-only; under
// resource-and-stonith I/O stays frozen), 6 the peer is primary (this
// node outdates itself; I/O stays frozen under resource-and-stonith).
// Under resource-only writes go on while the handler runs; under
// resource-and-stonith a write waits for the handler, completing once it
// settled the peer, or only when an operator resumes I/O. Under
// dont-care no handler runs and nothing freezes.
func TestFencePeerExitCodes(t *testing.T) {
	type tc struct {
		policy engine.FencePolicy
		code   int
	}
	cases := []tc{{engine.DontCare, 0}}
	for _, p := range []engine.FencePolicy{engine.ResourceOnly, engine.ResourceAndStonith} {
		for _, code := range []int{3, 4, 5, 6, 7} {
			cases = append(cases, tc{p, code})
		}
	}
	for _, c := range cases {
		name := c.policy.String()
		if c.policy != engine.DontCare {
			name += fmt.Sprintf(", exit %d", c.code)
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fifo := filepath.Join(dir, "release")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			started := filepath.Join(dir, "started")
			// read is a shell builtin: killing the shell (Close, fence
			// timeout) leaves no child holding the output pipe.
			handler := fmt.Sprintf(`echo "$REPLICAD_PEER_NODE_ID $REPLICAD_FENCING" >> %s; read code < %s; exit $code`, started, fifo)
			release := func(code int) {
				f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(f, "%d\n", code)
				f.Close()
			}
			nodes := twoNodesWith(t, 'C', func(rc *ReplicatorConfig) {
				rc.Fencing = c.policy
				rc.FencePeerHandler = handler
				rc.FenceTimeout = time.Minute
			})
			a, b := nodes[0], nodes[1]
			promoteInSync(t, a, b)

			b.rep.Disconnect(0)
			waitFor(t, "the primary to notice", func() bool { return peerState(a).Conn != engine.Connected })
			if c.policy == engine.DontCare {
				// Fencing starts in the same engine call that records the
				// lost connection.
				if peerState(a).Fencing || a.rep.Status().Suspended {
					t.Fatalf("dont-care: fencing %v, suspended %v; want neither", peerState(a).Fencing, a.rep.Status().Suspended)
				}
				startWrite(a, 0).wait(t, "dont-care")
				if _, err := os.Stat(started); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("dont-care: the fence-peer handler ran (%v)", err)
				}
				return
			}
			waitFor(t, "the handler to start", func() bool {
				ran, _ := os.ReadFile(started)
				return string(ran) == "1 "+c.policy.String()+"\n"
			})
			if !peerState(a).Fencing {
				t.Fatal("the handler runs, but the peer is not shown as being fenced")
			}
			stonith := c.policy == engine.ResourceAndStonith
			if got := a.rep.Status().Suspended; got != stonith {
				t.Fatalf("while the handler runs: I/O suspended %v, want %v", got, stonith)
			}
			w := startWrite(a, 0)
			if stonith {
				w.waitFrozen(t)
			} else {
				w.wait(t, "resource-only, while the handler runs")
				if !peerState(a).Fencing {
					t.Fatal("setup: the handler ended before it was released")
				}
			}

			release(c.code)
			waitFor(t, "the handler's result", func() bool { return !peerState(a).Fencing })
			want := wantFenceOutcome(c.policy, c.code)
			st := a.rep.Status()
			p := st.Peers[0]
			wantDisk := engine.UpToDate
			if want.selfOutdated {
				wantDisk = engine.Outdated
			}
			if p.Outdated != want.peerOutdated || st.Suspended != want.frozen || st.Disk != wantDisk || st.Role != engine.Primary {
				t.Fatalf("after exit %d: peer outdated %v, I/O suspended %v, disk %v, role %v; want %v, %v, %v, Primary",
					c.code, p.Outdated, st.Suspended, st.Disk, st.Role, want.peerOutdated, want.frozen, wantDisk)
			}
			if !stonith {
				return
			}
			if want.frozen {
				// Still parked: a frozen outcome does not wake writers.
				id := <-w.id
				w.id <- id
				select {
				case err := <-w.done:
					t.Fatalf("after exit %d the write completed (%v) although I/O stays frozen", c.code, err)
				default:
				}
				if !blockedIn(id, "(*Replicator).waitThawed") {
					t.Fatalf("after exit %d the write is no longer waiting for frozen I/O", c.code)
				}
				a.rep.ResumeIO()
			}
			w.wait(t, fmt.Sprintf("after exit %d", c.code))
		})
	}
}

// TestFencePeerExitCodesOnPromotion: a secondary promoted while its peer
// is unreachable fences the peer first; the promotion goes ahead only
// when the exit code leaves the peer marked Outdated (3, 4, 7; 5 under
// resource-only), and code 6 (the peer is primary) outdates this node.
func TestFencePeerExitCodesOnPromotion(t *testing.T) {
	for _, policy := range []engine.FencePolicy{engine.ResourceOnly, engine.ResourceAndStonith} {
		for _, code := range []int{1, 3, 4, 5, 6, 7} {
			t.Run(policy.String()+", exit "+strconv.Itoa(code), func(t *testing.T) {
				e := detachedEngine(t, policy)
				_, err := e.Promote(false)
				var nf *engine.NeedsFencingError
				if !errors.As(err, &nf) || len(nf.Peers) != 1 || nf.Peers[0] != 1 {
					t.Fatalf("promotion with the peer unreachable: %v, want it to need fencing node 1", err)
				}
				e.FenceResult(1, code)
				want := wantFenceOutcome(policy, code)
				_, err = e.Promote(false)
				switch {
				case want.peerOutdated && err != nil:
					t.Fatalf("exit %d: promotion refused: %v", code, err)
				case !want.peerOutdated && err == nil:
					t.Fatalf("exit %d: promoted, but the peer was not reported outdated or fenced", code)
				}
				if got := e.Disk() == engine.Outdated; got != want.selfOutdated {
					t.Fatalf("exit %d: disk %v", code, e.Disk())
				}
			})
		}
	}
	// dont-care: nothing to fence.
	if _, err := detachedEngine(t, engine.DontCare).Promote(false); err != nil {
		t.Fatalf("dont-care: promotion with the peer unreachable: %v", err)
	}
}

// detachedEngine is node 0 of two under policy: UpToDate, secondary, its
// peer never connected.
func detachedEngine(t *testing.T, policy engine.FencePolicy) *engine.Engine {
	t.Helper()
	mem := disk.NewMem(8 << 20)
	g := meta.DefaultGeometry()
	g.ALExtents = 67
	if _, err := CreateMetadata(Devices{Data: mem}, CreateOptions{NodeID: 0, Geometry: g}); err != nil {
		t.Fatal(err)
	}
	vol, _, err := Attach("r0", Devices{Data: mem}, AttachOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vol.Close() })
	var n uint64
	e, err := engine.New(engine.Config{NodeID: 0, Volume: "r0", Peers: []uint32{1}, Protocol: 'C', Fencing: policy,
		Policies: uuid.DefaultPolicies(), NewUUID: func() uint64 { n++; return n << 20 }}, vol)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Promote(true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Demote(); err != nil {
		t.Fatal(err)
	}
	if e.Disk() != engine.UpToDate {
		t.Fatalf("setup: disk %v", e.Disk())
	}
	return e
}
