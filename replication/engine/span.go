package engine

import "sort"

// Pieces returns [off, off+n) without the spans in skip, as ordered,
// non-empty pieces.
func Pieces(off, n int64, skip []Span) []Span {
	if len(skip) == 0 {
		return []Span{{off, n}}
	}
	s := append([]Span(nil), skip...)
	sort.Slice(s, func(i, j int) bool { return s[i].Off < s[j].Off })
	var out []Span
	cur := off
	for _, k := range s {
		if k.Off > cur {
			out = append(out, Span{cur, min(k.Off, off+n) - cur})
		}
		cur = max(cur, k.Off+k.N)
		if cur >= off+n {
			break
		}
	}
	if cur < off+n {
		out = append(out, Span{cur, off + n - cur})
	}
	return out
}
