package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replicad/replicad/dlm"
	"github.com/replicad/replicad/dlm/engine"
	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/dlm/wire"
)

// localSync takes EX on name and unlocks it, each call waiting for its
// completion, for d; it returns lock+unlock pairs per second.
func localSync(ls *dlm.Lockspace, name string, d time.Duration) (float64, error) {
	ctx := context.Background()
	req := dlm.Request{Name: name, Mode: locktable.EX}
	n := 0
	start := time.Now()
	deadline := start.Add(d)
	for {
		for range 64 {
			lk, _, err := ls.Lock(ctx, req)
			if err != nil {
				return 0, fmt.Errorf("lock: %w", err)
			}
			if err := lk.Unlock(ctx, 0, nil); err != nil {
				return 0, fmt.Errorf("unlock: %w", err)
			}
		}
		n += 64
		if now := time.Now(); now.After(deadline) {
			return float64(n) / now.Sub(start).Seconds(), nil
		}
	}
}

// localAsync keeps inflight lock+unlock chains going with the asynchronous
// calls, one resource per chain, each call made from the previous one's
// completion callback, for d; it returns lock+unlock pairs per second.
func localAsync(ls *dlm.Lockspace, prefix string, inflight int, d time.Duration) (float64, error) {
	var (
		pairs    atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		wg.Done()
	}
	var onComplete func(*dlm.Lock, dlm.Completion)
	lock := func(name string) error {
		_, err := ls.LockAsync(dlm.Request{Name: name, Mode: locktable.EX, OnComplete: onComplete})
		return err
	}
	onComplete = func(l *dlm.Lock, c dlm.Completion) {
		switch {
		case c.Result == locktable.ResultGranted && !c.Final:
			if err := l.UnlockAsync(0, nil); err != nil {
				fail(fmt.Errorf("unlock: %w", err))
			}
		case c.Result == locktable.ResultUnlocked && c.Final:
			pairs.Add(1)
			if stop.Load() {
				wg.Done()
				return
			}
			if err := lock(l.Name()); err != nil {
				fail(fmt.Errorf("lock: %w", err))
			}
		default:
			fail(fmt.Errorf("unexpected completion %+v", c))
		}
	}
	start := time.Now()
	for i := range inflight {
		wg.Add(1)
		if err := lock(fmt.Sprintf("%s-%d", prefix, i)); err != nil {
			wg.Done()
			stop.Store(true)
			wg.Wait()
			return 0, err
		}
	}
	time.Sleep(d)
	n, elapsed := pairs.Load(), time.Since(start)
	stop.Store(true)
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(n) / elapsed.Seconds(), nil
}

// requestFrameSize is the size of the frame (length prefix included) that
// carries one lock request for name between two nodes.
func requestFrameSize(lockspace, name string) int {
	inc := uint64(time.Now().UnixNano())
	env := &wire.Envelope{Lockspace: lockspace, From: 2, FromInc: inc + 1, To: 1, ToInc: inc, Seq: 1000, Ack: 1000,
		Msgs: []wire.Msg{{Type: wire.TypeRequest, Gen: 1, ID: 1000, LkID: 1000, Name: name, Mode: locktable.EX}}}
	return 4 + len(wire.Marshal(env))
}

// rttProbe is a ping-pong of fixed-size length-prefixed frames over one
// loopback TCP connection, read through bufio as the DLM's transport does.
type rttProbe struct {
	ln   net.Listener
	conn net.Conn
	r    *bufio.Reader
	buf  []byte
	done chan struct{}
}

func newRTTProbe(size int) (*rttProbe, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &rttProbe{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReaderSize(c, 64<<10)
		for {
			body, err := wire.ReadFrame(r, 0)
			if err != nil {
				return
			}
			if err := wire.WriteFrame(c, body); err != nil {
				return
			}
		}
	}()
	if p.conn, err = net.Dial("tcp", ln.Addr().String()); err != nil {
		ln.Close()
		return nil, err
	}
	p.r = bufio.NewReaderSize(p.conn, 64<<10)
	p.buf = make([]byte, size)
	binary.BigEndian.PutUint32(p.buf, uint32(size-4))
	return p, nil
}

// sample returns n round-trip times.
func (p *rttProbe) sample(n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if _, err := p.conn.Write(p.buf); err != nil {
			return nil, err
		}
		if _, err := wire.ReadFrame(p.r, 0); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

func (p *rttProbe) close() {
	p.conn.Close()
	p.ln.Close()
	<-p.done
}

// remoteAcquire takes EX on name from ls and unlocks it, n times, and
// returns the acquire latencies (Lock called to Lock returned granted).
func remoteAcquire(ls *dlm.Lockspace, name string, n int) ([]time.Duration, error) {
	ctx := context.Background()
	req := dlm.Request{Name: name, Mode: locktable.EX}
	out := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		lk, _, err := ls.Lock(ctx, req)
		d := time.Since(t0)
		if err != nil {
			return nil, fmt.Errorf("lock %q: %w", name, err)
		}
		out = append(out, d)
		if err := lk.Unlock(ctx, 0, nil); err != nil {
			return nil, fmt.Errorf("unlock %q: %w", name, err)
		}
	}
	return out, nil
}

// pingPong runs one client per lockspace on name for d: each converts its
// NL lock to EX, holds it until a blocking callback arrives, converts to
// NL and asks for EX again. It returns the handovers (a grant to the other
// client than the previous grant) in d.
func pingPong(lss []*dlm.Lockspace, name string, d time.Duration) (int64, time.Duration, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type client struct {
		lk   *dlm.Lock
		bast chan struct{}
	}
	var clients []client
	defer func() {
		for _, c := range clients {
			c.lk.Unlock(context.Background(), locktable.ForceUnlock, nil)
		}
	}()
	for _, ls := range lss { // the first one masters the resource
		bast := make(chan struct{}, 1)
		lk, _, err := ls.Lock(ctx, dlm.Request{Name: name, Mode: locktable.NL, OnBlocking: func(*dlm.Lock, dlm.Mode) {
			select {
			case bast <- struct{}{}:
			default:
			}
		}})
		if err != nil {
			return 0, 0, err
		}
		clients = append(clients, client{lk, bast})
	}
	var last atomic.Int32
	var handovers atomic.Int64
	errs := make(chan error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		me := int32(i + 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				for ctx.Err() == nil {
					if _, err := c.lk.Convert(ctx, locktable.EX, 0, nil); err != nil {
						if ctx.Err() != nil {
							return nil
						}
						return fmt.Errorf("client %d: convert to EX: %w", me, err)
					}
					if prev := last.Swap(me); prev != 0 && prev != me {
						handovers.Add(1)
					}
					select {
					case <-c.bast:
					case <-ctx.Done():
					}
					if ctx.Err() != nil {
						// A Convert that returns granted after ctx
						// ended may still have its cancel in flight (a
						// further Convert would get ErrBusy); the
						// deferred FORCEUNLOCK ends the lock.
						return nil
					}
					if _, err := c.lk.Convert(context.Background(), locktable.NL, 0, nil); err != nil {
						return fmt.Errorf("client %d: convert to NL: %w", me, err)
					}
				}
				return nil
			}()
		}()
	}
	start := time.Now()
	time.Sleep(d)
	n, elapsed := handovers.Load(), time.Since(start)
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return 0, 0, err
		}
	}
	return n, elapsed, nil
}

// recoveryResult is one recovery round, times from the fence confirmation.
type recoveryResult struct {
	victimLocks, victimMastered int
	detect                      time.Duration // node closed to both survivors waiting for fencing
	confirm                     time.Duration // the ConfirmFenced call
	running                     [2]time.Duration
	waiterGranted               time.Duration
	freshGranted                time.Duration
	total                       time.Duration // the latest of the above
	survivorLocks               [2]int
	mastered                    int // resources mastered by the survivors afterwards
}

// lockMany requests mode on every name from ls, with up to window requests
// outstanding, and waits until all are granted.
func lockMany(ls *dlm.Lockspace, names []string, mode dlm.Mode, window int) error {
	sem := make(chan struct{}, window)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	for _, name := range names {
		sem <- struct{}{}
		wg.Add(1)
		var once sync.Once
		_, err := ls.LockAsync(dlm.Request{Name: name, Mode: mode, OnComplete: func(_ *dlm.Lock, c dlm.Completion) {
			once.Do(func() {
				if c.Result != locktable.ResultGranted {
					errMu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("lock %q: %+v", name, c)
					}
					errMu.Unlock()
				}
				<-sem
				wg.Done()
			})
		}})
		if err != nil {
			wg.Done()
			wg.Wait()
			return err
		}
	}
	wg.Wait()
	return firstErr
}

// recovery runs one recovery round on a new three-node cluster with locks
// locks (see the package comment).
func recovery(locks int, tm timing, verbose bool, log func(format string, args ...any)) (res recoveryResult, err error) {
	c, lss, err := startJoined(3, tm, verbose, nil, "recovery")
	if err != nil {
		return res, err
	}
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	resources := locks / 2
	first := map[dlm.NodeID][]string{}
	second := map[dlm.NodeID][]string{}
	want := map[dlm.NodeID]int{}
	var fresh string // mastered by node 1, no lock of node 3 on it
	for i := range resources {
		name := fmt.Sprintf("r%07d", i)
		m := dlm.NodeID(i%3 + 1)
		s := dlm.NodeID((i+1)%3 + 1)
		first[m] = append(first[m], name)
		second[s] = append(second[s], name)
		want[m]++
		want[s]++
		if m == 1 && fresh == "" {
			fresh = name
		}
	}
	t0 := time.Now()
	for _, phase := range []map[dlm.NodeID][]string{first, second} {
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		for id, names := range phase {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := lockMany(lss[id], names, locktable.PR, 512); err != nil {
					errs <- fmt.Errorf("node %d: %w", id, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return res, err
		}
	}
	log("  %d locks on %d resources taken in %.1fs\n", locks, resources, time.Since(t0).Seconds())

	// node 1 holds EX on probe; node 2 waits for PR on it
	if _, _, err := lss[1].Lock(ctx, dlm.Request{Name: "probe", Mode: locktable.EX}); err != nil {
		return res, err
	}
	waiter := make(chan time.Time, 2)
	if _, err := lss[2].LockAsync(dlm.Request{Name: "probe", Mode: locktable.PR, OnComplete: func(_ *dlm.Lock, c dlm.Completion) {
		if c.Result == locktable.ResultGranted {
			waiter <- time.Now()
		}
	}}); err != nil {
		return res, err
	}
	for queued := false; !queued; {
		for _, r := range lss[1].Dump().Resources {
			if r.Name == "probe" && len(r.Waiting) == 1 {
				queued = true
			}
		}
		if ctx.Err() != nil {
			return res, errors.New("node 2's request on probe never queued on node 1")
		}
		time.Sleep(10 * time.Millisecond)
	}
	want[2]++
	st1 := lss[1].Status()
	res.victimLocks, res.victimMastered = st1.Locks, st1.Mastered
	for _, id := range []dlm.NodeID{2, 3} {
		if st := lss[id].Status(); st.Locks != want[id] {
			return res, fmt.Errorf("node %d holds %d locks before the failure, want %d", id, st.Locks, want[id])
		}
	}
	genBefore := lss[2].Status().Generation
	runtime.GC() // the setup's garbage is not the recovery's

	killed := time.Now()
	c.nodes[1].Close() // the process dies: no leave
	for _, id := range []dlm.NodeID{2, 3} {
		if err := waitState(ctx, lss[id], engine.StateWaitFencing); err != nil {
			return res, err
		}
	}
	res.detect = time.Since(killed)

	runningAt := make(chan struct {
		i  int
		at time.Time
	}, 2)
	for i, id := range []dlm.NodeID{2, 3} {
		go func() {
			for ctx.Err() == nil {
				if st := lss[id].Status(); st.State == engine.StateRunning && st.Generation > genBefore {
					runningAt <- struct {
						i  int
						at time.Time
					}{i, time.Now()}
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	confirmed := time.Now()
	if err := c.nodes[2].ConfirmFenced(1); err != nil {
		return res, fmt.Errorf("confirming node 1's fence on node 2: %w", err)
	}
	res.confirm = time.Since(confirmed)
	freshDone := make(chan error, 1)
	go func() {
		_, _, err := lss[3].Lock(ctx, dlm.Request{Name: fresh, Mode: locktable.PR})
		res.freshGranted = time.Since(confirmed)
		freshDone <- err
	}()
	for range 2 {
		select {
		case r := <-runningAt:
			res.running[r.i] = r.at.Sub(confirmed)
		case <-ctx.Done():
			return res, fmt.Errorf("survivors not running: %+v %+v", lss[2].Status(), lss[3].Status())
		}
	}
	select {
	case at := <-waiter:
		res.waiterGranted = at.Sub(confirmed)
	case <-ctx.Done():
		return res, errors.New("node 2's waiting request on probe never granted")
	}
	if err := <-freshDone; err != nil {
		return res, fmt.Errorf("node 3's new lock on %q: %w", fresh, err)
	}
	res.total = max(res.running[0], res.running[1], res.waiterGranted, res.freshGranted)
	if st := lss[3].Status(); st.Generation != lss[2].Status().Generation {
		return res, fmt.Errorf("survivors at generations %d and %d", lss[2].Status().Generation, st.Generation)
	}

	want[3]++ // the fresh lock
	for i, id := range []dlm.NodeID{2, 3} {
		st := lss[id].Status()
		res.survivorLocks[i] = st.Locks
		res.mastered += st.Mastered
		if st.Locks != want[id] {
			return res, fmt.Errorf("node %d holds %d locks after recovery, want %d", id, st.Locks, want[id])
		}
	}
	if res.mastered != resources+1 {
		return res, fmt.Errorf("the survivors master %d resources after recovery, want %d", res.mastered, resources+1)
	}
	return res, nil
}

func median[T int64 | float64 | time.Duration](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile returns the p-th percentile (nearest rank) of v.
func percentile(v []time.Duration, p float64) time.Duration {
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// stallGap is the gap between consecutive socket events of an acquire (or
// between the call and the first event, or the last event and the return)
// counted as a stall: the usual gaps are a few µs of processing or one
// one-way loopback trip (about half the RTT).
const stallGap = 30 * time.Microsecond

// hopStats describes acquires broken into socket events.
type hopStats struct {
	samples, stalled int
	events           float64       // socket events per acquire (mean)
	all              time.Duration // median latency
	clean, stalledAt time.Duration // median latency without and with a stall
	gap              time.Duration // median of the largest gap of the stalled ones
}

// acquireHops is remoteAcquire with every socket read and write of the
// nodes timed through h.
func acquireHops(ls *dlm.Lockspace, h *hopRecorder, name string, n int) (hopStats, error) {
	ctx := context.Background()
	req := dlm.Request{Name: name, Mode: locktable.EX}
	var st hopStats
	var all, clean, stalled, gaps []time.Duration
	events := 0
	for range n {
		h.start()
		t0 := time.Now()
		lk, _, err := ls.Lock(ctx, req)
		t1 := time.Now()
		evs := h.stop()
		if err != nil {
			return st, fmt.Errorf("lock %q: %w", name, err)
		}
		if err := lk.Unlock(ctx, 0, nil); err != nil {
			return st, fmt.Errorf("unlock %q: %w", name, err)
		}
		events += len(evs)
		points := append(append([]time.Time{t0}, evs...), t1)
		var largest time.Duration
		for i := 1; i < len(points); i++ {
			largest = max(largest, points[i].Sub(points[i-1]))
		}
		d := t1.Sub(t0)
		all = append(all, d)
		if largest >= stallGap {
			stalled = append(stalled, d)
			gaps = append(gaps, largest)
		} else {
			clean = append(clean, d)
		}
	}
	st = hopStats{samples: n, stalled: len(stalled), events: float64(events) / float64(n), all: median(all)}
	if len(clean) > 0 {
		st.clean = median(clean)
	}
	if len(stalled) > 0 {
		st.stalledAt, st.gap = median(stalled), median(gaps)
	}
	return st, nil
}
