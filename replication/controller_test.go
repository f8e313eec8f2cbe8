package replication

import (
	"testing"
	"time"
)

// The controller opens the window while acknowledgements are fast, closes
// it when they slow down, and stays within [chunk, max].
func TestResyncController(t *testing.T) {
	c := newResyncController(1<<20, 16<<20, 20*time.Millisecond)
	now := time.Unix(0, 0)
	for i := int64(0); i < 40; i++ {
		c.Sent(i, now)
		c.Acked(i, now.Add(time.Millisecond))
	}
	if c.Window() != 16<<20 {
		t.Fatalf("fast acks: window %d, want the 16 MiB cap", c.Window())
	}
	for i := int64(100); i < 140; i++ {
		c.Sent(i, now)
		c.Acked(i, now.Add(200*time.Millisecond))
	}
	if c.Window() != 1<<20 {
		t.Fatalf("slow acks: window %d, want the 1 MiB floor", c.Window())
	}
	c.Acked(999, now) // unknown range: ignored
	c.Sent(5, now)
	c.Acked(5, now.Add(time.Millisecond))
	if c.Window() != 2<<20 {
		t.Fatalf("one fast ack after slow ones: window %d, want 2 MiB", c.Window())
	}
}
