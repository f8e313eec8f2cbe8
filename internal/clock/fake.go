package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a manually driven Clock for deterministic tests.
type Fake struct {
	mu struct {
		sync.Mutex
		now    time.Time
		seq    uint64
		timers []*fakeTimer
	}
}

var _ Clock = (*Fake)(nil)

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake {
	f := &Fake{}
	f.mu.now = start
	return f
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.now
}

// NewTimer returns a timer that fires when Advance passes its deadline.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// AfterFunc calls fn (in a new goroutine) when Advance passes the deadline.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{f: f, fn: fn}
	t.Reset(d)
	return t
}

// Pending returns how many timers are armed.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.mu.timers)
}

// Advance moves the clock forward by d, firing due timers in deadline order.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	target := f.mu.now.Add(d)
	for {
		sort.Slice(f.mu.timers, func(i, j int) bool {
			a, b := f.mu.timers[i], f.mu.timers[j]
			if !a.when.Equal(b.when) {
				return a.when.Before(b.when)
			}
			return a.seq < b.seq
		})
		if len(f.mu.timers) == 0 || f.mu.timers[0].when.After(target) {
			break
		}
		t := f.mu.timers[0]
		f.mu.timers = f.mu.timers[1:]
		t.active = false
		if t.when.After(f.mu.now) {
			f.mu.now = t.when
		}
		now := f.mu.now
		f.mu.Unlock()
		t.fire(now)
		f.mu.Lock()
	}
	f.mu.now = target
	f.mu.Unlock()
}

type fakeTimer struct {
	f      *Fake
	c      chan time.Time
	fn     func()
	when   time.Time
	seq    uint64
	active bool // guarded by f.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) fire(now time.Time) {
	if t.fn != nil {
		go t.fn()
		return
	}
	select {
	case t.c <- now:
	default:
	}
}

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.removeLocked()
}

func (t *fakeTimer) removeLocked() bool {
	if !t.active {
		return false
	}
	for i, x := range t.f.mu.timers {
		if x == t {
			t.f.mu.timers = append(t.f.mu.timers[:i], t.f.mu.timers[i+1:]...)
			break
		}
	}
	t.active = false
	return true
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.removeLocked()
	t.f.mu.seq++
	t.seq = t.f.mu.seq
	t.when = t.f.mu.now.Add(d)
	t.active = true
	t.f.mu.timers = append(t.f.mu.timers, t)
	return was
}
