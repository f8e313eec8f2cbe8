package bitmap

import (
	"testing"

	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/replication/meta"
)

// TestAgainstModel compares Set/Clear/Count/NextSet/Test with a []bool.
func TestAgainstModel(t *testing.T) {
	r := testenv.Rand(t)
	for _, n := range []int64{1, 63, 64, 65, meta.BitsPerPage - 1, meta.BitsPerPage + 5, 3*meta.BitsPerPage + 100} {
		b := New(n)
		model := make([]bool, n)
		for step := 0; step < 2000; step++ {
			first := r.Int64N(n)
			last := first + r.Int64N(min(n-first, 200))
			set := r.IntN(2) == 0
			var want int64
			for i := first; i <= last; i++ {
				if model[i] != set {
					want++
				}
				model[i] = set
			}
			var got int64
			if set {
				got = b.Set(first, last)
			} else {
				got = b.Clear(first, last)
			}
			if got != want {
				t.Fatalf("n=%d step %d: changed %d bits, model says %d", n, step, got, want)
			}
		}
		var count int64
		next := int64(-1)
		for i := n - 1; i >= 0; i-- {
			if b.Test(i) != model[i] {
				t.Fatalf("n=%d: bit %d is %v, model %v", n, i, b.Test(i), model[i])
			}
			if model[i] {
				count++
				next = i
			}
		}
		if b.Count() != count {
			t.Fatalf("n=%d: Count %d, model %d", n, b.Count(), count)
		}
		if got := b.NextSet(0); got != next {
			t.Fatalf("n=%d: NextSet(0) = %d, want %d", n, got, next)
		}
	}
}

func TestDirtyPagesAndLoad(t *testing.T) {
	n := int64(3 * meta.BitsPerPage)
	b := New(n)
	b.Set(meta.BitsPerPage+3, meta.BitsPerPage+3)
	if got := b.AllDirtyPages(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("dirty pages %v, want [1]", got)
	}
	b.Set(meta.BitsPerPage+3, meta.BitsPerPage+3)
	words := b.Snapshot(1)
	if len(b.AllDirtyPages()) != 0 {
		t.Fatal("page still dirty after Snapshot")
	}
	b.Set(meta.BitsPerPage+3, meta.BitsPerPage+3) // no change: stays clean
	if len(b.AllDirtyPages()) != 0 {
		t.Fatal("setting a set bit dirtied its page")
	}
	c := New(n)
	c.Load(1, words)
	if !c.Test(meta.BitsPerPage+3) || c.Count() != 1 || len(c.AllDirtyPages()) != 0 {
		t.Fatal("Load did not reproduce the page clean")
	}
	c.SetPage(2)
	if c.Count() != 1+meta.BitsPerPage || !c.Dirty(2) {
		t.Fatalf("SetPage: count %d, dirty %v", c.Count(), c.Dirty(2))
	}
}

// Bits past the end in a loaded page (garbage from disk) are ignored.
func TestLoadMasksTail(t *testing.T) {
	b := New(70)
	words := make([]uint64, meta.WordsPerPage)
	for i := range words {
		words[i] = ^uint64(0)
	}
	b.Load(0, words)
	if b.Count() != 70 || b.NextSet(70) != -1 {
		t.Fatalf("count %d after loading an all-ones page into 70 bits", b.Count())
	}
}

func TestWordsAndOr(t *testing.T) {
	r := testenv.Rand(t)
	for round := 0; round < 50; round++ {
		n := int64(1 + r.IntN(200000))
		a, b := New(n), New(n)
		for i := 0; i < 50; i++ {
			f := r.Int64N(n)
			a.Set(f, min(n-1, f+r.Int64N(300)))
			g := r.Int64N(n)
			b.Set(g, min(n-1, g+r.Int64N(300)))
		}
		union := New(n)
		for i := int64(0); i < n; i++ {
			if a.Test(i) || b.Test(i) {
				union.Set(i, i)
			}
		}
		start := r.IntN(a.WordLen())
		for s := 0; s < a.WordLen(); s += 97 {
			a.Or(s, b.Words(s, 97))
		}
		_ = start
		if a.Count() != union.Count() {
			t.Fatalf("n=%d: union has %d bits, Or gave %d", n, union.Count(), a.Count())
		}
		for i := int64(0); i < n; i++ {
			if a.Test(i) != union.Test(i) {
				t.Fatalf("n=%d: bit %d differs after Or", n, i)
			}
		}
	}
}
