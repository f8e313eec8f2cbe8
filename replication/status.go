package replication

import (
	"fmt"

	"github.com/replicad/replicad/replication/meta"
)

// DiskState is DRBD's disk state name.
type DiskState string

// Disk states.
const (
	Diskless     DiskState = "Diskless"
	Attaching    DiskState = "Attaching"
	Failed       DiskState = "Failed"
	Inconsistent DiskState = "Inconsistent"
	Outdated     DiskState = "Outdated"
	DUnknown     DiskState = "DUnknown"
	Consistent   DiskState = "Consistent"
	UpToDate     DiskState = "UpToDate"
)

// PeerSlotStatus is the bookkeeping for one assigned peer slot.
type PeerSlotStatus struct {
	Slot           int      `json:"slot"`
	Node           int32    `json:"node"`
	BitmapUUID     string   `json:"bitmap_uuid"`
	Flags          []string `json:"flags,omitempty"`
	OutOfSyncBytes int64    `json:"out_of_sync_bytes"`
}

// Status is a snapshot of a volume's state.
type Status struct {
	Name        string           `json:"name"`
	Size        int64            `json:"size"`
	Disk        DiskState        `json:"disk"`
	DiskError   string           `json:"disk_error,omitempty"`
	ReadOnly    bool             `json:"read_only,omitempty"`
	NodeID      uint32           `json:"node_id"`
	CurrentUUID string           `json:"current_uuid"`
	Flags       []string         `json:"flags,omitempty"`
	Internal    bool             `json:"internal_metadata"`
	ALExtents   int              `json:"al_extents_active"`
	Slots       []PeerSlotStatus `json:"peer_slots,omitempty"`
}

// Status reports the volume's state.
func (v *Volume) Status() Status {
	v.mu.Lock()
	defer v.mu.Unlock()
	sb := v.mu.sb
	st := Status{
		Name:        v.name,
		Size:        v.layout.DataSize,
		Disk:        diskState(sb.Flags),
		ReadOnly:    v.readOnly,
		NodeID:      sb.NodeID,
		CurrentUUID: uuidString(sb.CurrentUUID),
		Flags:       sb.Flags.Names(),
		Internal:    sb.Internal,
		ALExtents:   len(v.mu.al.Extents()),
	}
	if err := v.failed.Load(); err != nil {
		st.Disk, st.DiskError = Failed, (*err).Error()
	}
	for s := 0; s < v.layout.Geometry.MaxPeers; s++ {
		p := sb.Peers[s]
		if p.NodeID == meta.NoNode {
			continue
		}
		st.Slots = append(st.Slots, PeerSlotStatus{
			Slot:           s,
			Node:           p.NodeID,
			BitmapUUID:     uuidString(p.BitmapUUID),
			Flags:          p.Flags.Names(),
			OutOfSyncBytes: v.mu.bitmaps[s].Count() << v.granShift,
		})
	}
	return st
}

func diskState(f meta.Flags) DiskState {
	switch {
	case f&meta.FlagConsistent == 0:
		return Inconsistent
	case f&meta.FlagWasUpToDate != 0:
		return UpToDate
	default:
		return Outdated
	}
}

func uuidString(u uint64) string { return fmt.Sprintf("%016X", u) }

// AssignPeerSlot gives node a peer slot (its existing one, or a free one)
// and starts collecting every write in its bitmap, as for a peer that is
// not connected. It returns the slot.
func (v *Volume) AssignPeerSlot(node int32) (int, error) {
	v.mu.Lock()
	slot := -1
	for s := 0; s < v.layout.Geometry.MaxPeers; s++ {
		if v.mu.sb.Peers[s].NodeID == node {
			v.mu.Unlock()
			return s, nil
		}
		if slot < 0 && v.mu.sb.Peers[s].NodeID == meta.NoNode {
			slot = s
		}
	}
	if slot < 0 {
		v.mu.Unlock()
		return -1, fmt.Errorf("no free peer slot for node %d: all %d slots are assigned (the volume's max-peers, fixed when the metadata is created)", node, v.layout.Geometry.MaxPeers)
	}
	v.mu.sb.Peers[slot] = meta.PeerSlot{NodeID: node, BitmapUUID: v.mu.sb.CurrentUUID}
	v.mu.tracked = append(v.mu.tracked, slot)
	v.mu.Unlock()
	return slot, v.writeSuperblock()
}
