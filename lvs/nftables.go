package lvs

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/google/nftables"

	"github.com/replicad/replicad/lvs/model"
	"github.com/replicad/replicad/lvs/nftrules"
	"github.com/replicad/replicad/lvs/plan"
)

// NFTables is the backend for kernels without ip_vs: NAT rules in one inet
// table replicad owns (see lvs/nftrules for the layout and what each
// scheduler becomes). Every Apply is one atomic nftables transaction.
type NFTables struct {
	layout    nftrules.Layout
	netnsPath string
	log       *slog.Logger

	mu struct {
		sync.Mutex
		state       nftrules.TableState // found by the last Observe
		counters    nftrules.Counters
		warnedNoFwd bool
		lastDamaged string
	}
}

var _ Backend = (*NFTables)(nil)

// NewNFTables returns the backend for the table called table in the network
// namespace at netnsPath ("" for the current one).
func NewNFTables(table, netnsPath string, log *slog.Logger) *NFTables {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &NFTables{layout: nftrules.NewLayout(table), netnsPath: netnsPath, log: log}
}

// Name implements Backend.
func (b *NFTables) Name() string { return model.BackendNFTables }

// Close implements Backend. Each call opens its own netlink socket, so
// there is nothing to release.
func (b *NFTables) Close() error { return nil }

func (b *NFTables) conn() (*nftables.Conn, func(), error) {
	h, closeNS, err := nsHandle(b.netnsPath)
	if err != nil {
		return nil, nil, err
	}
	var opts []nftables.ConnOption
	if b.netnsPath != "" {
		opts = append(opts, nftables.WithNetNSFd(int(h)))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		closeNS()
		return nil, nil, fmt.Errorf("nftables: %w", err)
	}
	return c, closeNS, nil
}

// snapshot reads the replicad table.
func (b *NFTables) snapshot() (nftrules.Snapshot, error) {
	c, closeNS, err := b.conn()
	if err != nil {
		return nftrules.Snapshot{}, err
	}
	defer closeNS()
	snap := nftrules.Snapshot{Chains: map[string][]*nftables.Rule{}}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return snap, fmt.Errorf("nftables: list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == b.layout.Table.Name {
			snap.TableExists = true
		}
	}
	if !snap.TableExists {
		return snap, nil
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return snap, fmt.Errorf("nftables: list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name != b.layout.Table.Name {
			continue
		}
		rules, err := c.GetRules(b.layout.Table, ch)
		if err != nil {
			return snap, fmt.Errorf("nftables: rules of %s: %w", ch.Name, err)
		}
		snap.Chains[ch.Name] = rules
	}
	sets, err := c.GetSets(b.layout.Table)
	if err != nil {
		return snap, fmt.Errorf("nftables: list sets: %w", err)
	}
	for _, s := range sets {
		snap.Sets = append(snap.Sets, s.Name)
	}
	return snap, nil
}

// Observe implements Backend. A damaged table (edited by hand) is reported
// as empty, so that the plan recreates everything, and the next Apply
// replaces the whole table in one transaction.
func (b *NFTables) Observe(_ context.Context) ([]model.Observed, error) {
	snap, err := b.snapshot()
	if err != nil {
		return nil, err
	}
	d := nftrules.Decode(snap)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mu.state = nftrules.StateOf(snap, d)
	if d.Damaged != "" {
		if d.Damaged != b.mu.lastDamaged {
			b.log.Warn("lvs: nftables table was changed outside replicad; it will be rebuilt", "table", b.layout.Table.Name, "problem", d.Damaged)
		}
		b.mu.lastDamaged = d.Damaged
		b.mu.counters = nil
		return nil, nil
	}
	b.mu.lastDamaged = ""
	b.mu.counters = nftrules.Counters{}
	for _, o := range d.Services {
		m := map[netip.AddrPort]uint64{}
		for a, st := range o.RealServerStats {
			m[a] = st.Connections
		}
		b.mu.counters[o.Key] = m
	}
	return d.Services, nil
}

// Apply implements Backend.
func (b *NFTables) Apply(_ context.Context, desired []model.Service, ops []plan.Op) error {
	b.mu.Lock()
	state, counters := b.mu.state, b.mu.counters
	b.mu.Unlock()
	batch, err := nftrules.BuildBatch(b.layout, desired, ops, counters, state)
	if err != nil {
		return err
	}
	if len(batch) == 0 {
		return nil
	}
	b.warnIfNotForwarding(desired)
	c, closeNS, err := b.conn()
	if err != nil {
		return err
	}
	defer closeNS()
	for _, a := range batch {
		switch a.Kind {
		case nftrules.AddTable:
			c.AddTable(b.layout.Table)
		case nftrules.DelTable:
			c.DelTable(b.layout.Table)
		case nftrules.AddChain:
			c.AddChain(a.Chain)
		case nftrules.FlushChain:
			c.FlushChain(a.Chain)
		case nftrules.DelChain:
			c.DelChain(a.Chain)
		case nftrules.AddSet:
			if err := c.AddSet(a.Set, a.Elems); err != nil {
				return fmt.Errorf("nftables: set %s: %w", a.Set.Name, err)
			}
		case nftrules.DelSet:
			c.DelSet(a.Set)
		case nftrules.FlushSet:
			c.FlushSet(a.Set)
		case nftrules.AddRule:
			c.AddRule(a.Rule)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: apply %d changes to table %s: %w", len(batch), b.layout.Table.Name, err)
	}
	// A packet that went through the old rules just before the commit may
	// have put a client into the set of a server that was just quiesced;
	// flush those sets once more now that no rule can add to them.
	again := false
	for _, a := range batch {
		if a.Kind == nftrules.FlushSet {
			c.FlushSet(a.Set)
			again = true
		}
	}
	if again {
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nftables: flush persistence of quiesced servers: %w", err)
		}
	}
	b.mu.Lock()
	b.mu.state = nftrules.TableIntact
	b.mu.Unlock()
	return nil
}

// warnIfNotForwarding logs once when NAT services exist but the kernel does
// not forward IPv4 packets (the director must route to its real servers).
func (b *NFTables) warnIfNotForwarding(desired []model.Service) {
	if len(desired) == 0 {
		return
	}
	b.mu.Lock()
	warned := b.mu.warnedNoFwd
	b.mu.Unlock()
	if warned {
		return
	}
	var val string
	_ = inNetNS(b.netnsPath, func() error {
		v, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		val = strings.TrimSpace(string(v))
		return err
	})
	if val == "0" {
		b.log.Warn("lvs: net.ipv4.ip_forward is 0; NAT real servers on other hosts will not be reached")
		b.mu.Lock()
		b.mu.warnedNoFwd = true
		b.mu.Unlock()
	}
}

// DeleteTable removes the replicad table (used by `repctl lvs flush` and
// tests). Established connections keep their conntrack NAT mapping.
func (b *NFTables) DeleteTable() error {
	c, closeNS, err := b.conn()
	if err != nil {
		return err
	}
	defer closeNS()
	c.DelTable(b.layout.Table)
	return c.Flush()
}
