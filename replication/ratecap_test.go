package replication

import (
	"runtime"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/clock"
)

// rateStep is the fake-time resolution of takeTimed.
const rateStep = time.Millisecond

// takeTimed runs b.take(n) against the fake clock c, advancing it in
// rateStep steps while take sleeps, and returns the fake time take slept
// (to within rateStep above). take arms at most one timer: while it is
// armed take is asleep; once it fired or was never armed take returns.
func takeTimed(t *testing.T, c *clock.Fake, b *tokenBucket, n int64, done <-chan struct{}) time.Duration {
	t.Helper()
	ret := make(chan struct{})
	go func() {
		b.take(n, done)
		close(ret)
	}()
	start := c.Now()
	for {
		select {
		case <-ret:
			return c.Now().Sub(start)
		default:
		}
		if c.Pending() == 0 {
			runtime.Gosched() // not asleep (yet, or any more)
			continue
		}
		if c.Now().Sub(start) > time.Hour {
			t.Fatalf("take(%d) still asleep after an hour of fake time", n)
		}
		c.Advance(rateStep)
	}
}

// TestTokenBucketCapsResyncRate: the resync sender's bucket (link.go)
// lets at most rate bytes through per second of (fake) time, plus a
// one-second burst, over any window, idle periods included; it makes a
// sender wait no longer than the bytes over the allowance need; rate 0 is
// unlimited and never waits.
func TestTokenBucketCapsResyncRate(t *testing.T) {
	const rate = 1 << 20 // 1 MiB/s
	type take struct {
		idle time.Duration // fake time passing before the take
		n    int64
	}
	mib := int64(1 << 20)
	schedules := map[string][]take{
		"steady chunks":        {{0, 256 << 10}, {0, 256 << 10}, {0, 256 << 10}, {0, 256 << 10}, {0, 256 << 10}, {0, 256 << 10}, {0, 256 << 10}, {0, 256 << 10}, {0, 256 << 10}, {0, 256 << 10}},
		"chunk above the rate": {{0, 3 * mib}, {0, 4096}, {0, mib}},
		"idle credit capped":   {{0, mib}, {10 * time.Second, mib}, {0, mib}, {0, mib}},
		"short idles":          {{0, 512 << 10}, {300 * time.Millisecond, 512 << 10}, {100 * time.Millisecond, 700 << 10}, {2 * time.Second, 300 << 10}, {0, 900 << 10}, {50 * time.Millisecond, 64 << 10}},
	}
	for name, sched := range schedules {
		t.Run(name, func(t *testing.T) {
			c := clock.NewFake(time.Unix(1000, 0))
			b := &tokenBucket{rate: rate, clock: c}
			// at[i] is when take i returned (the bytes went out then),
			// began[i] when it was called.
			var at, began []time.Time
			var slept []time.Duration
			for _, tk := range sched {
				c.Advance(tk.idle)
				began = append(began, c.Now())
				slept = append(slept, takeTimed(t, c, b, tk.n, nil))
				at = append(at, c.Now())
			}
			// Over any window [began[i], at[j]], the bytes of takes i..j
			// are within rate×window plus the one-second burst.
			for i := range sched {
				var sum int64
				for j := i; j < len(sched); j++ {
					sum += sched[j].n
					window := at[j].Sub(began[i])
					if allowed := rate*window.Seconds() + rate; float64(sum) > allowed {
						t.Fatalf("takes %d..%d: %d bytes in %v, over %v bytes (rate %d B/s plus a one-second burst); slept %v",
							i, j, sum, window, allowed, rate, slept)
					}
				}
			}
			// No needless waiting: a take sleeps only when the bytes since
			// the bucket was last full exceed what the time since allows,
			// and then no longer than that excess needs (plus one step).
			// A reference bucket replays the schedule in exact time.
			tokens, last := float64(rate), began[0]
			for i, tk := range sched {
				now := began[i]
				tokens = min(float64(rate), tokens+now.Sub(last).Seconds()*rate)
				tokens -= float64(tk.n)
				var want time.Duration
				if tokens < 0 {
					want = time.Duration(-tokens / rate * float64(time.Second))
				}
				if slept[i] < want || slept[i] > want+rateStep {
					t.Fatalf("take %d (%d bytes after %v idle): slept %v, want %v (to within %v)", i, tk.n, tk.idle, slept[i], want, rateStep)
				}
				last = now
			}
		})
	}

	t.Run("first second's burst", func(t *testing.T) {
		c := clock.NewFake(time.Unix(1000, 0))
		b := &tokenBucket{rate: rate, clock: c}
		if d := takeTimed(t, c, b, rate, nil); d != 0 {
			t.Fatalf("the first %d bytes waited %v; a one-second burst is allowed", rate, d)
		}
		if d := takeTimed(t, c, b, 1, nil); d == 0 {
			t.Fatal("a byte beyond the burst went out at once")
		}
	})

	t.Run("rate 0 never waits", func(t *testing.T) {
		c := clock.NewFake(time.Unix(1000, 0))
		b := &tokenBucket{rate: 0, clock: c}
		for i := 0; i < 100; i++ {
			ret := make(chan struct{})
			go func() {
				b.take(1<<30, nil)
				close(ret)
			}()
			// Returned, or asleep: nothing advances c, a sleep never ends.
			for c.Pending() == 0 {
				select {
				case <-ret:
				default:
					runtime.Gosched()
					continue
				}
				break
			}
			if c.Pending() != 0 {
				t.Fatalf("take %d of 1 GiB sleeps at rate 0", i)
			}
		}
	})

	t.Run("sleep ends when done closes", func(t *testing.T) {
		c := clock.NewFake(time.Unix(1000, 0))
		b := &tokenBucket{rate: rate, clock: c}
		b.take(rate, nil) // the burst
		done := make(chan struct{})
		ret := make(chan struct{})
		go func() {
			b.take(rate, done) // a second's wait
			close(ret)
		}()
		for c.Pending() == 0 {
			runtime.Gosched()
		}
		close(done)
		<-ret // returns without the clock moving
		if got := c.Now(); !got.Equal(time.Unix(1000, 0)) {
			t.Fatalf("the clock moved to %v", got)
		}
	})
}
