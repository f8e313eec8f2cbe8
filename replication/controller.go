package replication

import "time"

// resyncController sizes the resync window (bytes in flight) from the
// round trip of resync acknowledgements: it grows by one chunk per
// acknowledgement that came back within DelayTarget and shrinks by a
// quarter on one that did not, between one chunk and MaxWindow. On an idle
// path the window opens up to the link's capacity; when application writes
// queue ahead of resync data on the link or the peer's disk, acknowledgements
// slow down and the resync yields (the role of DRBD's c-delay-target). The
// rate cap (ResyncRate) applies on top.
type resyncController struct {
	chunk, max int64
	target     time.Duration
	window     int64
	sent       map[int64]time.Time // range offset -> when its data was queued
}

func newResyncController(chunk, maxWindow int64, target time.Duration) *resyncController {
	return &resyncController{chunk: chunk, max: max(chunk, maxWindow), target: target, window: 4 * chunk,
		sent: make(map[int64]time.Time)}
}

// Window is the bytes allowed in flight.
func (c *resyncController) Window() int64 { return min(c.window, c.max) }

// Sent records that a range went out at t.
func (c *resyncController) Sent(off int64, t time.Time) { c.sent[off] = t }

// Acked adjusts the window on the acknowledgement of the range at off.
func (c *resyncController) Acked(off int64, t time.Time) {
	start, ok := c.sent[off]
	if !ok {
		return
	}
	delete(c.sent, off)
	if t.Sub(start) <= c.target {
		c.window = min(c.max, c.window+c.chunk)
	} else {
		c.window = max(c.chunk, c.window*3/4)
	}
}
