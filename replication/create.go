package replication

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/replicad/replicad/replication/activitylog"
	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/meta"
)

// Devices are what a volume lives on. Meta nil means internal metadata at
// the end of Data.
type Devices struct {
	Data disk.Device
	Meta disk.Device
}

func (d Devices) meta() disk.Device {
	if d.Meta == nil {
		return d.Data
	}
	return d.Meta
}

func (d Devices) superblockOffset() int64 {
	if d.Meta == nil {
		return d.Data.Size() - 2*meta.BlockSize
	}
	return 0
}

// CreateOptions are create-md's parameters.
type CreateOptions struct {
	NodeID   uint32
	Geometry meta.Geometry
	// Force overwrites existing metadata.
	Force bool
	// Standalone marks the data UpToDate with a fresh generation: for a
	// volume with no peers there is nobody to sync from. Without it the
	// volume starts Inconsistent with the just-created UUID, as DRBD's
	// create-md leaves it, waiting for a first promotion or sync.
	Standalone bool
}

// Existing describes metadata found where CreateMetadata would write.
type Existing struct {
	NodeID      uint32
	DataSize    int64
	CurrentUUID uint64
	Damaged     bool
}

// MetadataExistsError is the ErrMetadataExists error, with what was found.
type MetadataExistsError struct{ Found Existing }

func (e *MetadataExistsError) Error() string {
	if e.Found.Damaged {
		return "metadata already exists (damaged superblock copies found); use --force to overwrite"
	}
	return fmt.Sprintf("metadata already exists (node %d, data %s, current UUID %016X); use --force to overwrite",
		e.Found.NodeID, meta.FormatBytes(e.Found.DataSize), e.Found.CurrentUUID)
}

// Is makes errors.Is(err, ErrMetadataExists) true.
func (e *MetadataExistsError) Is(target error) bool { return target == ErrMetadataExists }

// CreateMetadata initialises metadata on devs: both superblock copies, an
// empty bitmap for every peer slot and an empty activity-log ring. It
// refuses to overwrite existing metadata unless opts.Force is set. It
// returns the layout written.
func CreateMetadata(devs Devices, opts CreateOptions) (meta.Layout, error) {
	md := devs.meta()
	var layout meta.Layout
	var err error
	if devs.Meta == nil {
		layout, err = meta.InternalLayout(devs.Data.Size(), opts.Geometry)
	} else {
		layout, err = meta.ExternalLayout(devs.Data.Size(), opts.Geometry)
		if err == nil && md.Size() < layout.MetaSize {
			err = &meta.SizeError{What: "metadata device", Have: md.Size(), Need: layout.MetaSize}
		}
	}
	if err != nil {
		return meta.Layout{}, err
	}
	if !opts.Force {
		if err := checkNoMetadata(md, devs.superblockOffset()); err != nil {
			return meta.Layout{}, err
		}
	}
	devUUID := randomUUID()
	// Bitmaps: every page of every slot, so no stale page survives.
	page := make([]byte, meta.BlockSize)
	for slot := 0; slot < layout.Geometry.MaxPeers; slot++ {
		for p := int64(0); p < layout.BitmapPagesPerSlot; p++ {
			meta.MarshalBitmapPage(page, nil, layout.BitmapPageIndex(slot, p), devUUID)
			if err := disk.WriteFull(md, page, layout.BitmapPageOffset(slot, p)); err != nil {
				return meta.Layout{}, fmt.Errorf("initialise bitmap: %w", err)
			}
		}
	}
	for _, tx := range activitylog.InitialTransactions(int(layout.Geometry.ALExtents), layout.ALTransactions) {
		b, err := tx.Marshal(devUUID)
		if err != nil {
			return meta.Layout{}, err
		}
		pos := int(tx.Seq % uint64(layout.ALTransactions))
		if err := disk.WriteFull(md, b, layout.ALTransactionOffset(pos)); err != nil {
			return meta.Layout{}, fmt.Errorf("initialise activity log: %w", err)
		}
	}
	if err := md.Sync(); err != nil {
		return meta.Layout{}, err
	}
	sb := meta.Superblock{
		Seq:         1,
		DeviceUUID:  devUUID,
		NodeID:      opts.NodeID,
		DataSize:    layout.DataSize,
		Internal:    layout.Internal,
		Geometry:    layout.Geometry,
		Flags:       meta.FlagALClean,
		CurrentUUID: meta.UUIDJustCreated,
	}
	for i := range sb.Peers {
		sb.Peers[i].NodeID = meta.NoNode
	}
	if opts.Standalone {
		sb.Flags |= meta.FlagConsistent | meta.FlagWasUpToDate
		sb.CurrentUUID = randomUUID()
	}
	// Both copies, so that a higher-sequence copy of older metadata cannot win.
	for c := 0; c < 2; c++ {
		if err := meta.WriteSuperblock(md, devs.superblockOffset(), c, &sb); err != nil {
			return meta.Layout{}, err
		}
	}
	return layout, nil
}

func checkNoMetadata(md disk.Device, off int64) error {
	if off < 0 {
		return nil
	}
	res, err := meta.ReadSuperblock(md, off)
	switch {
	case err == nil:
		s := res.Superblock
		return &MetadataExistsError{Found: Existing{NodeID: s.NodeID, DataSize: s.DataSize, CurrentUUID: s.CurrentUUID}}
	case errors.Is(err, meta.ErrNoMetadata):
		return nil
	case errors.Is(err, meta.ErrCorrupt) || errors.Is(err, meta.ErrVersion):
		return &MetadataExistsError{Found: Existing{Damaged: true}}
	default:
		return err
	}
}

// randomUUID returns a random generation UUID with bit 0 (DRBD's "primary"
// marker) clear and never one of the reserved small values.
func randomUUID() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("crypto/rand failed: " + err.Error())
		}
		u := binary.LittleEndian.Uint64(b[:]) &^ 1
		if u > 16 {
			return u
		}
	}
}
