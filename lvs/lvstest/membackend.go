package lvstest

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/replicad/replicad/lvs/model"
	"github.com/replicad/replicad/lvs/plan"
)

// MemBackend is an in-memory load-balancing table with the methods of
// lvs.Backend, for tests of what drives an lvs.Manager (the daemon, repctl)
// without a kernel. Apply makes the desired services the table's owned
// services and leaves foreign ones (AddForeign) alone; Observe returns
// them with the counters set by SetStats. It keeps a log of applied
// operations.
type MemBackend struct {
	name string
	mu   struct {
		sync.Mutex
		table   map[model.Key]model.Observed
		applied []string
		closed  bool
		failErr error
	}
}

// NewMemBackend returns an empty table that claims to be the named
// backend (model.BackendIPVS or model.BackendNFTables), whose
// capabilities the Manager then checks.
func NewMemBackend(name string) *MemBackend {
	b := &MemBackend{name: name}
	b.mu.table = map[model.Key]model.Observed{}
	return b
}

// Name is the backend name given to NewMemBackend.
func (b *MemBackend) Name() string { return b.name }

// Observe returns the table, sorted by key.
func (b *MemBackend) Observe(context.Context) ([]model.Observed, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]model.Observed, 0, len(b.mu.table))
	for _, o := range b.mu.table {
		o.Service = o.Service.Clone()
		out = append(out, o)
	}
	slices.SortFunc(out, func(x, y model.Observed) int { return compareKeys(x.Key, y.Key) })
	return out, nil
}

// Apply replaces the owned services with desired, keeping the counters of
// services that stay.
func (b *MemBackend) Apply(_ context.Context, desired []model.Service, ops []plan.Op) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.failErr != nil {
		return b.mu.failErr
	}
	want := map[model.Key]bool{}
	for _, s := range desired {
		want[s.Key] = true
		o := b.mu.table[s.Key]
		o.Service, o.Owned = s.Clone(), true
		b.mu.table[s.Key] = o
	}
	for k, o := range b.mu.table {
		if o.Owned && !want[k] {
			delete(b.mu.table, k)
		}
	}
	for _, op := range ops {
		b.mu.applied = append(b.mu.applied, op.String())
	}
	return nil
}

// Close marks the backend closed; the table stays (as the kernel's does).
func (b *MemBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.closed = true
	return nil
}

// Closed reports whether Close was called.
func (b *MemBackend) Closed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.closed
}

// FailApply makes every Apply fail with err, changing nothing, until it
// is called with nil (a kernel that refuses the update).
func (b *MemBackend) FailApply(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.failErr = err
}

// AddForeign puts a service that replicad does not own into the table.
func (b *MemBackend) AddForeign(s model.Service) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.table[s.Key] = model.Observed{Service: s.Clone()}
}

// SetStats sets the counters of a service in the table and of its real
// servers.
func (b *MemBackend) SetStats(key model.Key, svc model.Stats, rs map[netip.AddrPort]model.Stats) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.mu.table[key]
	if !ok {
		return
	}
	o.Stats, o.RealServerStats = svc, rs
	b.mu.table[key] = o
}

// Applied returns the operations applied so far (plan.Op strings) and
// forgets them.
func (b *MemBackend) Applied() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.mu.applied
	b.mu.applied = nil
	return out
}

// Service returns the table's entry for key.
func (b *MemBackend) Service(key model.Key) (model.Observed, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.mu.table[key]
	return o, ok
}

func compareKeys(a, b model.Key) int { return strings.Compare(a.String(), b.String()) }
