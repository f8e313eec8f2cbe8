package activitylog

import (
	"fmt"
	"slices"

	"github.com/replicad/replicad/replication/meta"
)

// Log is the in-memory activity log.
type Log struct {
	slots   []uint32       // extent in each slot, meta.NoExtent if empty
	index   map[uint32]int // extent -> slot, for committed extents
	refs    []int32        // writes in flight per slot
	lastUse []uint64       // tick of the last acquire, for LRU
	busy    []bool         // slot is changing in a prepared, uncommitted transaction
	tick    uint64
	seq     uint64 // sequence of the last committed transaction
	cursor  int    // first slot of the next transaction's context window
	ring    int
	pending bool
}

// New returns a log of len(slots) slots holding the given extents (as rebuilt
// by meta.ReplayAL), whose last committed transaction was lastSeq, written to
// a ring of ring transactions.
func New(slots []uint32, lastSeq uint64, ring int) *Log {
	l := &Log{
		slots:   slices.Clone(slots),
		index:   make(map[uint32]int, len(slots)),
		refs:    make([]int32, len(slots)),
		lastUse: make([]uint64, len(slots)),
		busy:    make([]bool, len(slots)),
		seq:     lastSeq,
		ring:    ring,
	}
	for i, e := range l.slots {
		if e == meta.NoExtent {
			continue
		}
		if _, dup := l.index[e]; dup {
			// A replayed table can only hold an extent twice if the ring lied;
			// keep the first and free the other rather than lose track.
			l.slots[i] = meta.NoExtent
			continue
		}
		l.index[e] = i
	}
	return l
}

// Len is the number of slots.
func (l *Log) Len() int { return len(l.slots) }

// Seq is the sequence number of the last committed transaction.
func (l *Log) Seq() uint64 { return l.seq }

// RingPosition is the ring block a transaction with sequence seq goes to.
func (l *Log) RingPosition(seq uint64) int { return int(seq % uint64(l.ring)) }

// Extents returns the committed extents, in slot order.
func (l *Log) Extents() []uint32 {
	var out []uint32
	for _, e := range l.slots {
		if e != meta.NoExtent {
			out = append(out, e)
		}
	}
	return out
}

// Contains reports whether extent e is committed in the log.
func (l *Log) Contains(e uint32) bool {
	_, ok := l.index[e]
	return ok
}

// InFlight returns the number of writes in flight on extent e.
func (l *Log) InFlight(e uint32) int32 {
	if s, ok := l.index[e]; ok {
		return l.refs[s]
	}
	return 0
}

// TryAcquire takes a reference on every extent in [first, last] if all of
// them are committed and none is leaving; otherwise it changes nothing and
// returns false.
func (l *Log) TryAcquire(first, last uint32) bool {
	for e := first; ; e++ {
		s, ok := l.index[e]
		if !ok || l.busy[s] {
			return false
		}
		if e == last {
			break
		}
	}
	l.tick++
	for e := first; ; e++ {
		s := l.index[e]
		l.refs[s]++
		l.lastUse[s] = l.tick
		if e == last {
			break
		}
	}
	return true
}

// Release drops the references TryAcquire took.
func (l *Log) Release(first, last uint32) {
	for e := first; ; e++ {
		s, ok := l.index[e]
		if !ok || l.refs[s] <= 0 {
			panic(fmt.Sprintf("activity log: release of extent %d without a reference (invariant: every Release follows a successful TryAcquire)", e))
		}
		l.refs[s]--
		if e == last {
			break
		}
	}
}

// Prepared is a transaction that Prepare reserved: Evicted lists the extents
// it removes (their bitmap bits must reach stable storage before Tx does).
type Prepared struct {
	Tx      meta.ALTransaction
	Evicted []uint32
	Added   []uint32
}

// Prepare plans a transaction that brings as many of the missing extents of
// want into the log as fit in one transaction (at most meta.ALMaxUpdates).
// Victims are empty slots first, then the least recently used slots with no
// writes in flight. Until Commit or Abort, the slots involved are busy:
// TryAcquire on an evicted extent fails. Only one transaction may be
// prepared at a time. It returns ErrFull if no missing extent could get a
// slot.
func (l *Log) Prepare(want []uint32) (Prepared, error) {
	if l.pending {
		panic("activity log: Prepare while a transaction is pending (invariant: one transaction at a time)")
	}
	var p Prepared
	needed := make(map[uint32]bool, len(want))
	for _, e := range want {
		needed[e] = true
	}
	for _, e := range want {
		if len(p.Tx.Updates) == meta.ALMaxUpdates {
			break
		}
		if _, ok := l.index[e]; ok || !needed[e] {
			continue
		}
		needed[e] = false // once per extent
		s := l.victim(needed)
		if s < 0 {
			break
		}
		l.busy[s] = true
		if old := l.slots[s]; old != meta.NoExtent {
			p.Evicted = append(p.Evicted, old)
		}
		p.Added = append(p.Added, e)
		p.Tx.Updates = append(p.Tx.Updates, meta.ALUpdate{Slot: uint32(s), Extent: e})
	}
	if len(p.Tx.Updates) == 0 {
		return Prepared{}, ErrFull
	}
	p.Tx.Seq = l.seq + 1
	after := slices.Clone(l.slots)
	for _, u := range p.Tx.Updates {
		after[u.Slot] = u.Extent
	}
	n := min(meta.ALContextPerTx, len(l.slots))
	p.Tx.ContextStart = uint32(l.cursor)
	// The window wraps: emit it as the part up to the end of the table, and
	// let the next transaction continue from the start.
	end := min(l.cursor+n, len(l.slots))
	p.Tx.Context = after[l.cursor:end]
	l.pending = true
	return p, nil
}

// victim picks the slot for a new extent, or -1.
func (l *Log) victim(needed map[uint32]bool) int {
	best := -1
	for s, e := range l.slots {
		if l.busy[s] {
			continue
		}
		if e == meta.NoExtent {
			return s
		}
		if l.refs[s] > 0 || needed[e] {
			continue
		}
		if best < 0 || l.lastUse[s] < l.lastUse[best] {
			best = s
		}
	}
	return best
}

// Commit applies a prepared transaction once it is on stable storage.
func (l *Log) Commit(p Prepared) {
	if !l.pending || p.Tx.Seq != l.seq+1 {
		panic(fmt.Sprintf("activity log: commit of transaction %d, expected a pending %d (invariant: Commit follows Prepare)", p.Tx.Seq, l.seq+1))
	}
	for _, u := range p.Tx.Updates {
		s := int(u.Slot)
		if old := l.slots[s]; old != meta.NoExtent {
			delete(l.index, old)
		}
		l.slots[s] = u.Extent
		l.index[u.Extent] = s
		l.busy[s] = false
		l.refs[s] = 0
	}
	l.seq = p.Tx.Seq
	l.cursor = (int(p.Tx.ContextStart) + len(p.Tx.Context)) % len(l.slots)
	l.pending = false
}

// Abort releases the slots of a prepared transaction that could not be
// written; the log is as before Prepare.
func (l *Log) Abort(p Prepared) {
	for _, u := range p.Tx.Updates {
		l.busy[u.Slot] = false
	}
	l.pending = false
}

// InitialTransactions returns the transactions that initialise an empty
// ring for n slots: one per ring block, all slots empty.
func InitialTransactions(n, ring int) []meta.ALTransaction {
	l := New(emptySlots(n), 0, ring)
	txs := make([]meta.ALTransaction, ring)
	for i := range txs {
		ctxLen := min(meta.ALContextPerTx, n)
		end := min(l.cursor+ctxLen, n)
		txs[i] = meta.ALTransaction{Seq: uint64(i + 1), ContextStart: uint32(l.cursor), Context: slices.Clone(l.slots[l.cursor:end])}
		l.cursor = end % n
	}
	return txs
}

func emptySlots(n int) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = meta.NoExtent
	}
	return s
}
