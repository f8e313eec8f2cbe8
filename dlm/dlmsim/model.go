package dlmsim

import (
	"fmt"
	"maps"
	"slices"

	"github.com/replicad/replicad/dlm/engine"
	"github.com/replicad/replicad/dlm/locktable"
)

type opKind uint8

const (
	opReq opKind = iota + 1
	opConv
	opUnlock
)

type lockKey struct {
	node NodeID
	inc  uint64
	id   uint32
}

type lockModel struct {
	pending []opKind
	bast    bool
	gone    bool
	log     []engine.Callback
}

// model checks the callback contract: one completion per operation, none
// unasked for, blocking callbacks only to live locks that asked for them.
type model struct {
	locks map[lockKey]*lockModel
	errs  []string
}

func newModel() *model { return &model{locks: map[lockKey]*lockModel{}} }

func (m *model) failf(format string, args ...any) {
	if len(m.errs) < 20 {
		m.errs = append(m.errs, fmt.Sprintf(format, args...))
	}
}

func (m *model) issued(n NodeID, inc uint64, id uint32, op opKind, bast bool) {
	k := lockKey{n, inc, id}
	lm := m.locks[k]
	if op == opReq {
		if lm != nil && !lm.gone {
			m.failf("node %d reused live lock id %x", n, id)
		}
		lm = &lockModel{bast: bast}
		m.locks[k] = lm
	}
	if lm == nil || lm.gone {
		m.failf("node %d: operation on unknown lock %x", n, id)
		return
	}
	lm.pending = append(lm.pending, op)
}

func (m *model) forget(n NodeID, inc uint64) {
	for k, lm := range m.locks {
		if k.node == n && k.inc == inc {
			lm.gone = true
			lm.pending = nil
		}
	}
}

func (m *model) log(n NodeID, inc uint64, id uint32) []engine.Callback {
	if lm := m.locks[lockKey{n, inc, id}]; lm != nil {
		return slices.Clone(lm.log)
	}
	return nil
}

func (m *model) callback(n NodeID, inc uint64, cb engine.Callback) {
	lm := m.locks[lockKey{n, inc, cb.LkID}]
	if lm == nil || lm.gone {
		m.failf("node %d lock %x: callback %+v for a lock that does not exist", n, cb.LkID, cb)
		return
	}
	lm.log = append(lm.log, cb)
	if cb.Kind == engine.Blocking {
		if !lm.bast {
			m.failf("node %d lock %x: blocking callback without a handler", n, cb.LkID)
		}
		return
	}
	take := func(kinds ...opKind) bool {
		for i, op := range lm.pending {
			if slices.Contains(kinds, op) {
				lm.pending = slices.Delete(lm.pending, i, i+1)
				return true
			}
		}
		return false
	}
	switch cb.Result {
	case locktable.ResultUnlocked:
		if !take(opUnlock) {
			m.failf("node %d lock %x: unlocked completion without an unlock", n, cb.LkID)
		}
		if !cb.Final {
			m.failf("node %d lock %x: unlocked completion not final", n, cb.LkID)
		}
	case locktable.ResultGranted, locktable.ResultWouldBlock, locktable.ResultDeadlock, locktable.ResultCancelled:
		if !take(opReq, opConv) {
			m.failf("node %d lock %x: %v completion with no request or conversion pending (extra callback)", n, cb.LkID, cb.Result)
		}
	default:
		m.failf("node %d lock %x: completion result %v", n, cb.LkID, cb.Result)
	}
	if cb.Final {
		// anything still pending was superseded (a force-unlock after a
		// failed request, for instance)
		lm.gone = true
		lm.pending = nil
	}
}

// Errors returns the callback-contract violations seen so far.
func (c *Cluster) Errors() []string { return c.model.errs }

// Check verifies the safety invariants; call it after every step.
func (c *Cluster) Check() error {
	if len(c.model.errs) > 0 {
		return fmt.Errorf("callback contract: %v", c.model.errs)
	}
	// masters: granted modes pairwise compatible
	for _, id := range c.IDs() {
		n := c.nodes[id]
		if n.E == nil {
			continue
		}
		per := map[string][]locktable.Lock{}
		n.E.MasterCopies(func(name string, lk *locktable.Lock) {
			if lk.Status == locktable.StatusGranted || lk.Status == locktable.StatusConverting {
				per[name] = append(per[name], *lk)
			}
		})
		for _, name := range slices.Sorted(maps.Keys(per)) {
			ls := per[name]
			for i := range ls {
				for j := i + 1; j < len(ls); j++ {
					if !locktable.Compatible(ls[i].GrMode, ls[j].GrMode) {
						return fmt.Errorf("master %d of %q: %v holds %v and %v holds %v", id, name, ls[i].ID, ls[i].GrMode, ls[j].ID, ls[j].GrMode)
					}
				}
			}
		}
	}
	// holders: what everyone may use, plus unfenced dead nodes' locks
	type use struct {
		who  string
		mode locktable.Mode
	}
	per := map[string][]use{}
	for _, id := range c.IDs() {
		n := c.nodes[id]
		if n.E == nil {
			continue
		}
		for _, h := range n.E.Holders() {
			if m := Effective(h); m != locktable.IV {
				per[h.Name] = append(per[h.Name], use{fmt.Sprintf("node %d lock %x", id, h.LkID), m})
			}
		}
	}
	for _, dead := range slices.Sorted(maps.Keys(c.unfenced)) {
		for _, h := range c.unfenced[dead] {
			per[h.name] = append(per[h.name], use{fmt.Sprintf("unfenced dead node %d lock %x", dead, h.id), h.mode})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(per)) {
		us := per[name]
		for i := range us {
			for j := i + 1; j < len(us); j++ {
				if !locktable.Compatible(us[i].mode, us[j].mode) {
					return fmt.Errorf("resource %q: %s uses %v while %s uses %v", name, us[i].who, us[i].mode, us[j].who, us[j].mode)
				}
			}
		}
	}
	return nil
}

// CheckQuiescent verifies, on a settled cluster, that holders and masters
// agree: every lock a holder has granted, converting or waiting is on its
// master in the same state with the same id, and every master copy belongs
// to a live holder.
func (c *Cluster) CheckQuiescent() error {
	if err := c.Check(); err != nil {
		return err
	}
	type key struct {
		node NodeID
		id   uint32
	}
	masters := map[key]locktable.Lock{}
	masterOf := map[key]NodeID{}
	for _, id := range c.IDs() {
		n := c.nodes[id]
		if n.E == nil {
			continue
		}
		n.E.MasterCopies(func(name string, lk *locktable.Lock) {
			k := key{lk.ID.Node, lk.ID.ID}
			if _, dup := masters[k]; dup {
				c.model.failf("lock %v on two masters", lk.ID)
			}
			masters[k] = *lk
			masterOf[k] = id
		})
	}
	seen := map[key]bool{}
	for _, id := range c.IDs() {
		n := c.nodes[id]
		if n.E == nil {
			continue
		}
		for _, h := range n.E.Holders() {
			k := key{id, h.LkID}
			seen[k] = true
			if h.OpPending || h.Cancel || h.Unlock {
				return fmt.Errorf("settled cluster: node %d lock %x still has an operation in flight: %+v", id, h.LkID, h)
			}
			lk, ok := masters[k]
			if !ok {
				return fmt.Errorf("node %d lock %x (%v %v on %q) is on no master", id, h.LkID, h.Status, h.GrMode, h.Name)
			}
			if masterOf[k] != h.Master {
				return fmt.Errorf("node %d lock %x: holder thinks master is %d, it is on %d", id, h.LkID, h.Master, masterOf[k])
			}
			// A queued conversion the master demoted to NL to break a
			// conversion deadlock (CONVDEADLK) still shows its old granted
			// mode to the holder: the holder learns it with the completion
			// (DEMOTED), as in the kernel.
			demoted := lk.Status == locktable.StatusConverting && lk.SB&locktable.Demoted != 0 && lk.GrMode == locktable.NL
			if lk.Status != h.Status || (lk.GrMode != h.GrMode && !demoted) || (h.Status != locktable.StatusGranted && lk.RqMode != h.RqMode) {
				return fmt.Errorf("node %d lock %x: holder %v %v>%v, master %v %v>%v", id, h.LkID, h.Status, h.GrMode, h.RqMode, lk.Status, lk.GrMode, lk.RqMode)
			}
		}
	}
	for k := range masters {
		if !seen[k] {
			lk := masters[k]
			return fmt.Errorf("master copy of %d:%x (%v %v>%v) on node %d has no holder", k.node, k.id, lk.Status, lk.GrMode, lk.RqMode, masterOf[k])
		}
	}
	return nil
}

// CheckDrained verifies that every operation got its completion.
func (c *Cluster) CheckDrained() error {
	for _, k := range slices.SortedFunc(maps.Keys(c.model.locks), func(a, b lockKey) int {
		if a.node != b.node {
			return int(a.node) - int(b.node)
		}
		return int(a.id) - int(b.id)
	}) {
		lm := c.model.locks[k]
		if !lm.gone && len(lm.pending) > 0 {
			return fmt.Errorf("node %d lock %x: operations %v never completed", k.node, k.id, lm.pending)
		}
	}
	return nil
}
