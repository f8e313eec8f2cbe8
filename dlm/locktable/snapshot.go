package locktable

import "slices"

// ResourceState is a copy of one resource's master state, for dumps and
// tests.
type ResourceState struct {
	Name        string
	LVB         []byte // nil if never written
	LVBSeq      uint32
	ValNotValid bool
	Granted     []Lock
	Converting  []Lock
	Waiting     []Lock
}

// Snapshot returns a copy of a resource's state; ok is false if the table
// holds no locks on name.
func (t *Table) Snapshot(name string) (ResourceState, bool) {
	r := t.res[name]
	if r == nil {
		return ResourceState{}, false
	}
	cp := func(q []*Lock) []Lock {
		out := make([]Lock, len(q))
		for i, lk := range q {
			out[i] = *lk
			out[i].LVB = slices.Clone(lk.LVB)
			out[i].lvbOut = false
		}
		return out
	}
	return ResourceState{
		Name: name, LVB: slices.Clone(r.lvb), LVBSeq: r.lvbSeq, ValNotValid: r.valNotValid,
		Granted: cp(r.granted), Converting: cp(r.converting), Waiting: cp(r.waiting),
	}, true
}
