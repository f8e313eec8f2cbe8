package dlm

import (
	"sync"

	"github.com/replicad/replicad/dlm/engine"
)

// event is a callback for a lock.
type event struct {
	lk *Lock
	cb engine.Callback
}

// dispatcher delivers a lockspace's callbacks on one goroutine, in the
// order the engine produced them (so in order per lock), without holding
// any lock: a callback may call back into the API. It must not block.
type dispatcher struct {
	mu      sync.Mutex
	cond    *sync.Cond
	q       []event
	spare   []event // the batch delivered last, reused for the next
	stopped bool
}

func newDispatcher() *dispatcher {
	d := &dispatcher{}
	d.cond = sync.NewCond(&d.mu)
	return d
}

func (d *dispatcher) push(ev event) {
	d.mu.Lock()
	if !d.stopped {
		d.q = append(d.q, ev)
		d.cond.Signal()
	}
	d.mu.Unlock()
}

func (d *dispatcher) stop() {
	d.mu.Lock()
	d.stopped = true
	d.cond.Signal()
	d.mu.Unlock()
}

func (d *dispatcher) run() {
	for {
		d.mu.Lock()
		for len(d.q) == 0 && !d.stopped {
			d.cond.Wait()
		}
		if len(d.q) == 0 {
			d.mu.Unlock()
			return
		}
		q := d.q
		d.q, d.spare = d.spare[:0], nil
		d.mu.Unlock()
		for i, ev := range q {
			ev.lk.deliver(ev.cb)
			ev.lk.queued.Add(-1)
			q[i] = event{}
		}
		d.mu.Lock()
		d.spare = q
		d.mu.Unlock()
	}
}
