package dlm

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/clock"
)

// RecordFenced: a fence that began at t covers every incarnation started
// before t, also of a node still alive in the membership's view (the fence
// completed before its failure was noticed); it satisfies startup fencing
// only if it began after the membership started.
func TestStaticRecordFenced(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	clk := clock.NewFake(start)
	s, err := NewStatic(1, []NodeID{1, 2, 3}, false, clk)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordFenced(3, start.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if cs := s.State(); !slices.Contains(cs.Unknown, 3) {
		t.Fatalf("a fence older than this membership accounted for node 3 under startup fencing: %+v", cs)
	}
	if err := s.RecordFenced(3, start.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if cs := s.State(); slices.Contains(cs.Unknown, 3) {
		t.Fatalf("a fence after startup left node 3 unknown: %+v", cs)
	}

	inc := uint64(start.Add(2 * time.Second).UnixNano())
	s.PeerUp(2, inc)
	fencedAt := start.Add(3 * time.Second)
	if err := s.RecordFenced(2, fencedAt); err != nil {
		t.Fatal(err)
	}
	s.PeerDown(2) // noticed after the fence completed
	cs := s.State()
	if cs.Failed[2] != inc || cs.Fenced[2] < cs.Failed[2] {
		t.Fatalf("failure noticed after the fence is not covered by it: failed %d fenced %d", cs.Failed[2], cs.Fenced[2])
	}
	s.PeerUp(2, uint64(start.Add(4*time.Second).UnixNano())) // rebooted
	s.PeerDown(2)
	if cs := s.State(); cs.Fenced[2] >= cs.Failed[2] {
		t.Fatalf("an older fence covers the next incarnation's failure: failed %d fenced %d", cs.Failed[2], cs.Fenced[2])
	}

	if err := s.RecordFenced(4, start); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("unknown node: %v", err)
	}
	if err := s.RecordFenced(1, start); !errors.Is(err, ErrInvalid) {
		t.Fatalf("this node: %v", err)
	}
}
