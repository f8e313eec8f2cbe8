package sched

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/lvs/model"
)

func servers(weights ...int) []Server {
	out := make([]Server, len(weights))
	for i, w := range weights {
		out[i] = Server{Name: string(rune('A' + i)), Weight: w}
	}
	return out
}

func picks(t *testing.T, s Scheduler, srv []Server, n int) string {
	t.Helper()
	var b strings.Builder
	for range n {
		i := s.Pick(srv, Conn{})
		if i < 0 {
			b.WriteByte('-')
			continue
		}
		b.WriteString(srv[i].Name)
	}
	return b.String()
}

func mustNew(t *testing.T, name model.Scheduler) Scheduler {
	t.Helper()
	s, err := New(name, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRRAlternatesAndSkipsWeightZero(t *testing.T) {
	if got := picks(t, mustNew(t, model.RR), servers(1, 5, 1), 7); got != "ABCABCA" {
		t.Fatalf("rr ignores weights and alternates: got %s", got)
	}
	if got := picks(t, mustNew(t, model.RR), servers(1, 0, 1), 4); got != "ACAC" {
		t.Fatalf("rr skips quiesced servers: got %s", got)
	}
	if got := picks(t, mustNew(t, model.RR), servers(0, 0), 2); got != "--" {
		t.Fatalf("rr with nothing to pick: got %s", got)
	}
}

// The LVS documentation's example: weights A=4, B=3, C=2 give AABABCABC.
func TestWRRMatchesIPVSOrder(t *testing.T) {
	if got := picks(t, mustNew(t, model.WRR), servers(4, 3, 2), 18); got != "AABABCABC"+"AABABCABC" {
		t.Fatalf("wrr 4:3:2 = %s", got)
	}
	if got := picks(t, mustNew(t, model.WRR), servers(3, 1), 8); got != "AAABAAAB" {
		t.Fatalf("wrr 3:1 = %s", got)
	}
	if got := picks(t, mustNew(t, model.WRR), servers(2, 0, 2), 4); got != "ACAC" {
		t.Fatalf("wrr with a quiesced server = %s", got)
	}
}

func TestWRRSequencePeriodAndProportions(t *testing.T) {
	cases := []struct {
		w    []uint32
		want string
	}{
		{[]uint32{4, 3, 2}, "001012012"},
		{[]uint32{2, 2}, "01"}, // gcd 2: period 2
		{[]uint32{6, 3}, "001"},
		{[]uint32{0, 1}, "1"},
		{[]uint32{0, 0}, ""},
	}
	for _, c := range cases {
		var b strings.Builder
		for _, i := range WRRSequence(c.w) {
			fmt.Fprint(&b, i)
		}
		if b.String() != c.want {
			t.Errorf("WRRSequence(%v) = %q, want %q", c.w, b.String(), c.want)
		}
	}
	// Property: over one period each server appears weight/gcd times.
	r := testenv.Rand(t)
	for range 200 {
		n := 1 + r.IntN(6)
		w := make([]uint32, n)
		for i := range w {
			w[i] = uint32(r.IntN(20))
		}
		seq := WRRSequence(w)
		count := make([]int, n)
		for _, i := range seq {
			count[i]++
		}
		g := 0
		for _, x := range w {
			g = gcd(g, int(x))
		}
		for i := range w {
			want := 0
			if g > 0 {
				want = int(w[i]) / g
			}
			if count[i] != want {
				t.Fatalf("weights %v: server %d appears %d times per period, want %d", w, i, count[i], want)
			}
		}
	}
}

func TestLeastConnectionFamily(t *testing.T) {
	mk := func(w, active, inactive int) Server { return Server{Weight: w, Active: active, Inactive: inactive} }
	cases := []struct {
		name  model.Scheduler
		srv   []Server
		want  int
		reson string
	}{
		{model.LC, []Server{mk(1, 2, 0), mk(9, 3, 0)}, 0, "lc ignores weight: 2 active < 3 active"},
		{model.LC, []Server{mk(1, 1, 0), mk(1, 0, 300)}, 0, "lc overhead = active*256+inactive: 256 < 300"},
		{model.LC, []Server{mk(1, 2, 0), mk(1, 0, 300)}, 1, "lc overhead: 512 > 300"},
		{model.LC, []Server{mk(0, 0, 0), mk(1, 5, 0)}, 1, "lc skips weight 0"},
		{model.LC, []Server{mk(1, 1, 0), mk(1, 1, 0)}, 0, "ties go to the first"},
		{model.WLC, []Server{mk(1, 1, 0), mk(3, 2, 0)}, 1, "wlc: 256/1 > 512/3"},
		{model.WLC, []Server{mk(1, 0, 0), mk(3, 0, 0)}, 0, "wlc: all idle, first wins"},
		{model.SED, []Server{mk(1, 0, 0), mk(3, 1, 0)}, 1, "sed: (0+1)/1 > (1+1)/3"},
		{model.SED, []Server{mk(1, 0, 0), mk(1, 0, 0)}, 0, "sed tie"},
		{model.NQ, []Server{mk(10, 1, 0), mk(1, 0, 0)}, 1, "nq: an idle server beats sed"},
		{model.NQ, []Server{mk(1, 1, 0), mk(3, 1, 0)}, 1, "nq: nobody idle, sed"},
	}
	for _, c := range cases {
		got := mustNew(t, c.name).Pick(c.srv, Conn{})
		if got != c.want {
			t.Errorf("%s %v: picked %d, want %d (%s)", c.name, c.srv, got, c.want, c.reson)
		}
	}
}

func addr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}) }

func TestSourceHashIsStickyAndWeighted(t *testing.T) {
	s := mustNew(t, model.SH)
	srv := servers(1, 3)
	count := make([]int, 2)
	for c := range 2000 {
		first := s.Pick(srv, Conn{Src: addr(c)})
		for range 3 {
			if again := s.Pick(srv, Conn{Src: addr(c)}); again != first {
				t.Fatalf("sh moved client %v from %d to %d", addr(c), first, again)
			}
		}
		count[first]++
	}
	// Table: 64 buckets of A, 192 of B per 256 (weights 1:3 fill the table
	// in runs of 1 and 3). With 2000 clients expect about 1:3.
	if count[0] < 300 || count[0] > 700 {
		t.Errorf("sh 1:3 gave %v", count)
	}
	srv[0].Weight = 0
	for c := range 2000 {
		i := s.Pick(srv, Conn{Src: addr(c)})
		if i == 0 {
			t.Fatalf("sh picked a weight-0 server")
		}
	}
}

func TestDestinationHashDependsOnlyOnDestination(t *testing.T) {
	s := mustNew(t, model.DH)
	srv := servers(1, 1, 1)
	seen := map[int]bool{}
	for d := range 100 {
		first := s.Pick(srv, Conn{Src: addr(1), Dst: addr(1000 + d)})
		for c := range 5 {
			if got := s.Pick(srv, Conn{Src: addr(c), Dst: addr(1000 + d)}); got != first {
				t.Fatalf("dh: destination %v moved with the source", addr(1000+d))
			}
		}
		seen[first] = true
	}
	if len(seen) != 3 {
		t.Errorf("dh over 100 destinations used %d of 3 servers", len(seen))
	}
}

func TestLBLCKeepsDestinationUntilOverloaded(t *testing.T) {
	s := mustNew(t, model.LBLC)
	srv := servers(2, 2)
	dst := addr(7)
	first := s.Pick(srv, Conn{Dst: dst})
	if first != 0 {
		t.Fatalf("lblc first pick %d, want wlc's 0", first)
	}
	srv[0].Active = 2 // at its weight: not overloaded
	if got := s.Pick(srv, Conn{Dst: dst}); got != 0 {
		t.Fatalf("lblc left a server at its weight: %d", got)
	}
	srv[0].Active = 3 // over its weight while B is idle (under half)
	if got := s.Pick(srv, Conn{Dst: dst}); got != 1 {
		t.Fatalf("lblc stayed on an overloaded server: %d", got)
	}
	srv[0].Active = 0 // new entry sticks to B now
	if got := s.Pick(srv, Conn{Dst: dst}); got != 1 {
		t.Fatalf("lblc did not remember the new server: %d", got)
	}
}

func TestLBLCRGrowsTheSet(t *testing.T) {
	s := mustNew(t, model.LBLCR)
	srv := servers(1, 1, 1)
	dst := addr(9)
	if got := s.Pick(srv, Conn{Dst: dst}); got != 0 {
		t.Fatalf("first pick %d", got)
	}
	srv[0].Active = 5
	if got := s.Pick(srv, Conn{Dst: dst}); got != 1 {
		t.Fatalf("overloaded member: want B added, got %d", got)
	}
	// Now the set is {A, B}; B the least loaded member is chosen even if
	// C is equally idle.
	srv[0].Active = 5
	if got := s.Pick(srv, Conn{Dst: dst}); got != 1 {
		t.Fatalf("want set member B, got %d", got)
	}
}

func TestMaglevMinimalDisruption(t *testing.T) {
	srv := servers(1, 1, 1, 1, 1)
	before := MaglevTable(srv)
	count := make([]int, len(srv))
	for _, i := range before {
		count[i]++
	}
	for i, c := range count {
		if c < MaglevTableSize/len(srv)-60 || c > MaglevTableSize/len(srv)+60 {
			t.Errorf("server %d owns %d of %d slots: not balanced", i, c, MaglevTableSize)
		}
	}
	// Drain server 2: its slots move, and (Maglev's promise) few others do.
	srv[2].Weight = 0
	after := MaglevTable(srv)
	moved := 0
	for slot := range before {
		if after[slot] == 2 {
			t.Fatal("a weight-0 server still owns slots")
		}
		if before[slot] != 2 && after[slot] != before[slot] {
			moved++
		}
	}
	if moved > MaglevTableSize/20 {
		t.Errorf("draining one of 5 servers moved %d unrelated slots (> 5%%)", moved)
	}
	s := mustNew(t, model.MH)
	for c := range 100 {
		if s.Pick(srv, Conn{Src: addr(c)}) != after[hashAddr(addr(c))%MaglevTableSize] {
			t.Fatal("mh Pick does not follow its table")
		}
	}
}

func TestRandomFollowsWeights(t *testing.T) {
	seed := testenv.Seed(t)
	s, err := New(model.Random, seed)
	if err != nil {
		t.Fatal(err)
	}
	srv := servers(1, 0, 3)
	count := make([]int, 3)
	const n = 40000
	for range n {
		count[s.Pick(srv, Conn{})]++
	}
	if count[1] != 0 {
		t.Fatal("random picked a weight-0 server")
	}
	// Expect 10000 and 30000; the standard deviation is about 87, so
	// 1000 is more than 10 sigma.
	if count[0] < 9000 || count[0] > 11000 {
		t.Errorf("random 1:0:3 over %d = %v", n, count)
	}
}

func TestNewRejectsUnknown(t *testing.T) {
	if _, err := New("fo", 0); !errors.Is(err, ErrUnknownScheduler) {
		t.Fatalf("New(fo) = %v", err)
	}
	for _, name := range model.Schedulers {
		if _, err := New(name, 0); err != nil {
			t.Errorf("New(%s): %v", name, err)
		}
	}
}
