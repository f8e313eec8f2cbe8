package meta

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// ALMagic identifies an activity-log transaction ("RPAL").
const ALMagic uint32 = 0x4c415052

// NoExtent marks an empty activity-log slot.
const NoExtent uint32 = 0xffffffff

// Transaction layout.
const (
	alHeader = 32
	// ALMaxUpdates is the most slot changes one transaction carries.
	ALMaxUpdates = 64
	// ALContextPerTx is how many slots of context each transaction carries:
	// the remainder of the block after the header and the updates.
	ALContextPerTx = (BlockSize - alHeader - ALMaxUpdates*8) / 4
)

// ALUpdate puts Extent into Slot.
type ALUpdate struct {
	Slot   uint32
	Extent uint32
}

// ALTransaction is one 4 KiB record of the activity-log ring: a set of slot
// changes plus a window of the whole table (Context[i] is the content of slot
// ContextStart+i after the updates), so that the last few transactions
// rebuild every slot.
type ALTransaction struct {
	Seq          uint64
	Updates      []ALUpdate
	ContextStart uint32
	Context      []uint32
}

// Marshal encodes the transaction for the metadata identified by devUUID.
func (t *ALTransaction) Marshal(devUUID uint64) ([]byte, error) {
	if len(t.Updates) > ALMaxUpdates || len(t.Context) > ALContextPerTx {
		return nil, fmt.Errorf("activity-log transaction with %d updates and %d context slots exceeds %d/%d",
			len(t.Updates), len(t.Context), ALMaxUpdates, ALContextPerTx)
	}
	b := make([]byte, BlockSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], ALMagic)
	le.PutUint64(b[8:], t.Seq)
	le.PutUint64(b[16:], devUUID)
	le.PutUint16(b[24:], uint16(len(t.Updates)))
	le.PutUint16(b[26:], uint16(len(t.Context)))
	le.PutUint32(b[28:], t.ContextStart)
	for i, u := range t.Updates {
		le.PutUint32(b[alHeader+i*8:], u.Slot)
		le.PutUint32(b[alHeader+i*8+4:], u.Extent)
	}
	ctx := alHeader + ALMaxUpdates*8
	for i, e := range t.Context {
		le.PutUint32(b[ctx+i*4:], e)
	}
	le.PutUint32(b[4:], Checksum(b[8:]))
	return b, nil
}

// UnmarshalALTransaction decodes a ring block. Blocks that fail the magic,
// checksum or device-UUID check return ErrCorrupt.
func UnmarshalALTransaction(b []byte, devUUID uint64) (ALTransaction, error) {
	var t ALTransaction
	if len(b) != BlockSize {
		return t, fmt.Errorf("%w: transaction is %d bytes", ErrCorrupt, len(b))
	}
	le := binary.LittleEndian
	if le.Uint32(b) != ALMagic {
		return t, fmt.Errorf("%w: no activity-log magic", ErrCorrupt)
	}
	if got, want := Checksum(b[8:]), le.Uint32(b[4:]); got != want {
		return t, fmt.Errorf("%w: activity-log crc32c %08x, stored %08x", ErrCorrupt, got, want)
	}
	if got := le.Uint64(b[16:]); got != devUUID {
		return t, fmt.Errorf("%w: activity-log transaction of metadata %016x, not %016x", ErrCorrupt, got, devUUID)
	}
	nu, nc := int(le.Uint16(b[24:])), int(le.Uint16(b[26:]))
	if nu > ALMaxUpdates || nc > ALContextPerTx {
		return t, fmt.Errorf("%w: activity-log counts %d/%d out of range", ErrCorrupt, nu, nc)
	}
	t.Seq = le.Uint64(b[8:])
	t.ContextStart = le.Uint32(b[28:])
	t.Updates = make([]ALUpdate, nu)
	for i := range t.Updates {
		t.Updates[i] = ALUpdate{Slot: le.Uint32(b[alHeader+i*8:]), Extent: le.Uint32(b[alHeader+i*8+4:])}
	}
	ctx := alHeader + ALMaxUpdates*8
	t.Context = make([]uint32, nc)
	for i := range t.Context {
		t.Context[i] = le.Uint32(b[ctx+i*4:])
	}
	return t, nil
}

// ReplayAL rebuilds the activity-log table of n slots from the valid
// transactions of the ring, in sequence order. It returns the table and the
// highest sequence number seen (0 if none). Slot numbers outside the table
// are ignored, as is everything a corrupt block would have said.
func ReplayAL(txs []ALTransaction, n int) (slots []uint32, lastSeq uint64) {
	slots = make([]uint32, n)
	for i := range slots {
		slots[i] = NoExtent
	}
	sorted := append([]ALTransaction(nil), txs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Seq < sorted[j].Seq })
	for _, t := range sorted {
		for _, u := range t.Updates {
			if int(u.Slot) < n {
				slots[u.Slot] = u.Extent
			}
		}
		for i, e := range t.Context {
			if s := int(t.ContextStart) + i; s < n {
				slots[s] = e
			}
		}
		lastSeq = t.Seq
	}
	return slots, lastSeq
}
