package replication

import (
	"fmt"

	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/meta"
)

var _ engine.Store = (*Volume)(nil)

// Generation returns the persistent generation state.
func (v *Volume) Generation() engine.Generation {
	v.mu.Lock()
	defer v.mu.Unlock()
	sb := &v.mu.sb
	g := engine.Generation{
		Current:          sb.CurrentUUID,
		Consistent:       sb.Flags&meta.FlagConsistent != 0,
		UpToDate:         sb.Flags&meta.FlagWasUpToDate != 0,
		Primary:          sb.Flags&meta.FlagPrimary != 0,
		CrashedPrimary:   sb.Flags&meta.FlagCrashedPrimary != 0,
		CrashedSecondary: sb.Flags&meta.FlagCrashedSecondary != 0,
		Tentative:        sb.Flags&meta.FlagTentativeGeneration != 0,
		Uncommitted:      sb.Flags&meta.FlagUncommittedGeneration != 0,
		Pending:          sb.Flags&meta.FlagPendingGeneration != 0,
		SyncToward:       sb.SyncTowardUUID,
		LostQuorum:       sb.Flags&meta.FlagPrimaryLostQuorum != 0,
	}
	for _, h := range sb.History {
		if h != 0 {
			g.History = append(g.History, h)
		}
	}
	for s := 0; s < v.layout.Geometry.MaxPeers; s++ {
		p := sb.Peers[s]
		g.Slots = append(g.Slots, engine.Slot{
			Node: p.NodeID, Bitmap: p.BitmapUUID,
			Outdated:           p.Flags&meta.PeerOutdated != 0,
			PrimaryBeforeSplit: p.Flags&meta.PeerPrimaryBeforeSplit != 0,
		})
	}
	return g
}

// SetGeneration writes the generation state to the superblock (and syncs).
func (v *Volume) SetGeneration(g engine.Generation) error {
	if v.readOnly {
		return ErrReadOnly
	}
	v.mu.Lock()
	sb := &v.mu.sb
	sb.CurrentUUID, sb.SyncTowardUUID = g.Current, g.SyncToward
	clear(sb.History[:])
	copy(sb.History[:], g.History)
	setFlag := func(f meta.Flags, on bool) {
		if on {
			sb.Flags |= f
		} else {
			sb.Flags &^= f
		}
	}
	setFlag(meta.FlagConsistent, g.Consistent)
	setFlag(meta.FlagWasUpToDate, g.UpToDate)
	setFlag(meta.FlagPrimary, g.Primary)
	setFlag(meta.FlagCrashedPrimary, g.CrashedPrimary)
	setFlag(meta.FlagCrashedSecondary, g.CrashedSecondary)
	setFlag(meta.FlagTentativeGeneration, g.Tentative)
	setFlag(meta.FlagUncommittedGeneration, g.Uncommitted)
	setFlag(meta.FlagPendingGeneration, g.Pending)
	setFlag(meta.FlagPrimaryLostQuorum, g.LostQuorum)
	for s, slot := range g.Slots {
		if s >= v.layout.Geometry.MaxPeers {
			break
		}
		p := &sb.Peers[s]
		p.NodeID, p.BitmapUUID = slot.Node, slot.Bitmap
		p.Flags &^= meta.PeerOutdated | meta.PeerPrimaryBeforeSplit
		if slot.Outdated {
			p.Flags |= meta.PeerOutdated
		}
		if slot.PrimaryBeforeSplit {
			p.Flags |= meta.PeerPrimaryBeforeSplit
		}
	}
	v.mu.Unlock()
	return v.writeSuperblock()
}

// SlotFor returns node's peer slot, assigning a free one (persisted).
func (v *Volume) SlotFor(node uint32) (int, error) {
	v.mu.Lock()
	free := -1
	for s := 0; s < v.layout.Geometry.MaxPeers; s++ {
		switch v.mu.sb.Peers[s].NodeID {
		case int32(node):
			v.mu.Unlock()
			return s, nil
		case meta.NoNode:
			if free < 0 {
				free = s
			}
		}
	}
	if free < 0 {
		v.mu.Unlock()
		return -1, fmt.Errorf("no free peer slot for node %d: all %d are taken (the volume's max-peers, fixed when the metadata is created)", node, v.layout.Geometry.MaxPeers)
	}
	v.mu.sb.Peers[free] = meta.PeerSlot{NodeID: int32(node)}
	v.mu.Unlock()
	if v.readOnly {
		return free, nil
	}
	return free, v.writeSuperblock()
}

// MarkOutOfSync sets the bits of every block touching [off, off+n).
func (v *Volume) MarkOutOfSync(slot int, off, n int64) {
	if n <= 0 {
		return
	}
	v.mu.Lock()
	v.mu.bitmaps[slot].Set(off>>v.granShift, (off+n-1)>>v.granShift)
	v.mu.Unlock()
}

// PersistBitmaps writes every changed bitmap page and syncs.
func (v *Volume) PersistBitmaps() error {
	if v.readOnly {
		return ErrReadOnly
	}
	return v.writeBitmapPages(v.allDirtyPages())
}

// MarkAllOutOfSync sets every bit of the slot.
func (v *Volume) MarkAllOutOfSync(slot int) {
	v.mu.Lock()
	v.mu.bitmaps[slot].SetAll()
	v.mu.Unlock()
}

// ClearInSync clears the bits of blocks wholly inside [off, off+n): a block
// only partly covered is not known to be equal.
func (v *Volume) ClearInSync(slot int, off, n int64) {
	g := int64(1) << v.granShift
	first := (off + g - 1) >> v.granShift
	end := off + n
	if end == v.layout.DataSize {
		end = (v.layout.DataSize + g - 1) &^ (g - 1) // the last, partial block
	}
	last := end>>v.granShift - 1
	if last < first {
		return
	}
	v.mu.Lock()
	v.mu.bitmaps[slot].Clear(first, last)
	v.mu.Unlock()
}

// NextOutOfSync returns the offset of the first out-of-sync block at or
// after off.
func (v *Volume) NextOutOfSync(slot int, off int64) (int64, bool) {
	v.mu.Lock()
	i := v.mu.bitmaps[slot].NextSet(off >> v.granShift)
	v.mu.Unlock()
	if i < 0 {
		return 0, false
	}
	return i << v.granShift, true
}

// OutOfSyncBytes is the number of bytes marked out of sync for the slot
// (blocks times granularity, capped at the volume size).
func (v *Volume) OutOfSyncBytes(slot int) int64 {
	v.mu.Lock()
	n := v.mu.bitmaps[slot].Count() << v.granShift
	v.mu.Unlock()
	return min(n, v.layout.DataSize)
}

// BitmapWords copies up to n words of the slot's bitmap from word start.
func (v *Volume) BitmapWords(slot, start, n int) []uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.mu.bitmaps[slot].Words(start, n)
}

// MergeBitmap ORs words into the slot's bitmap from word start.
func (v *Volume) MergeBitmap(slot, start int, words []uint64) {
	v.mu.Lock()
	v.mu.bitmaps[slot].Or(start, words)
	v.mu.Unlock()
}

// BitmapLen is the number of words in a slot's bitmap.
func (v *Volume) BitmapLen() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.mu.bitmaps[0].WordLen()
}

// Granularity is the number of bytes one bitmap bit covers.
func (v *Volume) Granularity() int64 { return int64(1) << v.granShift }
