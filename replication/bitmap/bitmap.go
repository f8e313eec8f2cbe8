package bitmap

import (
	"math/bits"

	"github.com/replicad/replicad/replication/meta"
)

// Bitmap is a fixed-size bit set with per-page dirty tracking.
type Bitmap struct {
	n     int64
	words []uint64
	dirty []uint64 // one bit per page
	count int64
}

// New returns an all-clear bitmap of n bits.
func New(n int64) *Bitmap {
	pages := Pages(n)
	return &Bitmap{
		n:     n,
		words: make([]uint64, pages*meta.WordsPerPage),
		dirty: make([]uint64, (pages+63)/64),
	}
}

// Pages is the number of on-disk pages n bits occupy (at least one).
func Pages(n int64) int64 { return max(1, (n+meta.BitsPerPage-1)/meta.BitsPerPage) }

// Len is the number of bits.
func (b *Bitmap) Len() int64 { return b.n }

// Count is the number of set bits.
func (b *Bitmap) Count() int64 { return b.count }

// Test reports bit i.
func (b *Bitmap) Test(i int64) bool { return b.words[i/64]&(1<<(i%64)) != 0 }

// Set sets bits [first, last] (clamped to the bitmap) and returns how many
// were newly set.
func (b *Bitmap) Set(first, last int64) int64 {
	return b.apply(first, last, true)
}

// Clear clears bits [first, last] and returns how many were set before.
func (b *Bitmap) Clear(first, last int64) int64 {
	return b.apply(first, last, false)
}

func (b *Bitmap) apply(first, last int64, set bool) int64 {
	first, last = max(first, 0), min(last, b.n-1)
	var changed int64
	for i := first; i <= last; {
		w := i / 64
		lo := uint(i % 64)
		hi := uint(63)
		if end := w*64 + 63; end > last {
			hi = uint(last - w*64)
		}
		mask := (^uint64(0) >> (63 - hi)) &^ (1<<lo - 1)
		old := b.words[w]
		var nw uint64
		if set {
			nw = old | mask
			changed += int64(bits.OnesCount64(nw &^ old))
		} else {
			nw = old &^ mask
			changed += int64(bits.OnesCount64(old & mask))
		}
		if nw != old {
			b.words[w] = nw
			p := w / meta.WordsPerPage
			b.dirty[p/64] |= 1 << (p % 64)
		}
		i = w*64 + 64
	}
	if set {
		b.count += changed
	} else {
		b.count -= changed
	}
	return changed
}

// NextSet returns the first set bit at or after from, or -1.
func (b *Bitmap) NextSet(from int64) int64 {
	if from < 0 {
		from = 0
	}
	for w := from / 64; w < int64(len(b.words)); w++ {
		word := b.words[w]
		if w == from/64 {
			word &^= 1<<(from%64) - 1
		}
		if word != 0 {
			i := w*64 + int64(bits.TrailingZeros64(word))
			if i >= b.n {
				return -1
			}
			return i
		}
	}
	return -1
}

// PageOf is the page holding bit i.
func PageOf(i int64) int64 { return i / meta.BitsPerPage }

// Dirty reports whether page p changed since it was last marked clean.
func (b *Bitmap) Dirty(p int64) bool { return b.dirty[p/64]&(1<<(p%64)) != 0 }

// DirtyPages lists the dirty pages among those covering bits [first, last].
func (b *Bitmap) DirtyPages(first, last int64) []int64 {
	var out []int64
	for p := PageOf(max(first, 0)); p <= PageOf(min(last, b.n-1)); p++ {
		if b.Dirty(p) {
			out = append(out, p)
		}
	}
	return out
}

// AllDirtyPages lists every dirty page.
func (b *Bitmap) AllDirtyPages() []int64 { return b.DirtyPages(0, b.n-1) }

// Snapshot copies page p's words (for writing) and marks it clean. If the
// write fails, call MarkDirty.
func (b *Bitmap) Snapshot(p int64) []uint64 {
	b.dirty[p/64] &^= 1 << (p % 64)
	return append([]uint64(nil), b.words[p*meta.WordsPerPage:(p+1)*meta.WordsPerPage]...)
}

// MarkDirty marks page p for writing again.
func (b *Bitmap) MarkDirty(p int64) { b.dirty[p/64] |= 1 << (p % 64) }

// Load replaces page p with words read from disk; bits beyond the end are
// ignored. The page is clean afterwards.
func (b *Bitmap) Load(p int64, words []uint64) {
	dst := b.words[p*meta.WordsPerPage : (p+1)*meta.WordsPerPage]
	for i := range dst {
		old := dst[i]
		nw := words[i]
		if end := (p*meta.WordsPerPage + int64(i)) * 64; end+64 > b.n {
			keep := max(0, b.n-end)
			if keep < 64 {
				nw &= 1<<keep - 1
			}
		}
		dst[i] = nw
		b.count += int64(bits.OnesCount64(nw)) - int64(bits.OnesCount64(old))
	}
	b.dirty[p/64] &^= 1 << (p % 64)
}

// SetPage sets every bit of page p: the reading of a page that failed its
// checksum. The page is dirty afterwards, so the repaired page is written.
func (b *Bitmap) SetPage(p int64) {
	first := p * meta.BitsPerPage
	b.Set(first, first+meta.BitsPerPage-1)
	b.MarkDirty(p)
}

// Words copies up to n words starting at word start.
func (b *Bitmap) Words(start, n int) []uint64 {
	if start >= len(b.words) {
		return nil
	}
	end := min(start+n, b.WordLen())
	return append([]uint64(nil), b.words[start:end]...)
}

// WordLen is the number of words that hold the bitmap's bits.
func (b *Bitmap) WordLen() int { return int((b.n + 63) / 64) }

// Or merges words into the bitmap from word start; bits past the end are
// ignored. Changed pages become dirty.
func (b *Bitmap) Or(start int, words []uint64) {
	for i, w := range words {
		wi := start + i
		if wi >= b.WordLen() {
			return
		}
		base := int64(wi) * 64
		for w != 0 {
			tz := int64(bits.TrailingZeros64(w))
			if base+tz >= b.n {
				return
			}
			// Runs of set bits are set at once.
			run := int64(bits.TrailingZeros64(^(w >> uint(tz))))
			b.Set(base+tz, min(base+tz+run-1, b.n-1))
			if tz+run >= 64 {
				break
			}
			w &^= (1<<uint(run) - 1) << uint(tz)
		}
	}
}

// SetAll sets every bit.
func (b *Bitmap) SetAll() { b.Set(0, b.n-1) }
