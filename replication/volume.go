package replication

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/replicad/replicad/replication/activitylog"
	"github.com/replicad/replicad/replication/bitmap"
	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/meta"
)

// AttachOptions say how to attach a volume.
type AttachOptions struct {
	// ReadOnly refuses every write.
	ReadOnly bool
	// Logger receives attach findings and disk errors (slog.Default if nil).
	Logger *slog.Logger
}

// AttachReport says what Attach found and repaired.
type AttachReport struct {
	// SuperblockDamaged is set when one superblock copy was torn or corrupt
	// and the other was used.
	SuperblockDamaged error
	// CrashedPrimary: the volume was primary and not detached cleanly.
	CrashedPrimary bool
	// ALReplayed is the number of activity-log extents marked out of sync
	// because the last detach was not clean.
	ALReplayed int
	// TornBitmapPages counts bitmap pages that failed their checks and were
	// read as all bits set.
	TornBitmapPages int
}

// Volume is an attached volume.
type Volume struct {
	name     string
	devs     Devices
	md       disk.Device
	layout   meta.Layout
	sbOff    int64
	readOnly bool
	log      *slog.Logger

	extShift  uint // log2(ALExtentSize)
	granShift uint // log2(BitmapGranularity)

	flusher *syncer
	// gate: every I/O holds it for reading; Close takes it for writing, so
	// no pread or pwrite can run on a closed descriptor.
	gate     sync.RWMutex
	detached atomic.Bool
	failed   atomic.Pointer[error]
	sbMu     sync.Mutex // serialises superblock writes (I/O, not state)

	mu struct {
		sync.Mutex
		sb         meta.Superblock
		nextCopy   int
		al         *activitylog.Log
		bitmaps    []*bitmap.Bitmap // per peer slot
		tracked    []int            // slots whose bitmaps collect every write
		committing bool
		want       map[uint32]struct{} // extents waiting for a transaction
		committed  chan struct{}       // closed after each transaction commits
		fullWait   chan struct{}       // made by a committer waiting for room in a full log, closed (and nil again) on the next release
		commitErr  error
	}
}

// Attach reads a volume's metadata from devs and brings it into service.
// If the volume was not detached cleanly, the extents in its activity log
// are marked out of sync for every assigned peer (DRBD's apply-al), and a
// volume that was primary is flagged as a crashed primary.
func Attach(name string, devs Devices, opts AttachOptions) (*Volume, AttachReport, error) {
	var rep AttachReport
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	md := devs.meta()
	sbOff := devs.superblockOffset()
	if sbOff < 0 {
		return nil, rep, fmt.Errorf("%w on %s-byte device", ErrNoMetadata, fmt.Sprint(devs.Data.Size()))
	}
	res, err := meta.ReadSuperblock(md, sbOff)
	if errors.Is(err, meta.ErrNoMetadata) {
		return nil, rep, ErrNoMetadata
	}
	if err != nil {
		return nil, rep, fmt.Errorf("read superblock: %w", err)
	}
	sb := res.Superblock
	rep.SuperblockDamaged = res.Damaged
	if res.Damaged != nil {
		log.Warn("superblock copy damaged; using the other copy", "volume", name, "err", res.Damaged)
	}
	layout, err := sb.Layout(md.Size())
	if err != nil {
		return nil, rep, err
	}
	if !sb.Internal {
		if devs.Data.Size() < sb.DataSize {
			return nil, rep, &meta.SizeError{What: "backing device", Have: devs.Data.Size(), Need: sb.DataSize}
		}
		if md.Size() < layout.MetaSize {
			return nil, rep, &meta.SizeError{What: "metadata device", Have: md.Size(), Need: layout.MetaSize}
		}
	}
	v := &Volume{
		name:      name,
		devs:      devs,
		md:        md,
		layout:    layout,
		sbOff:     sbOff,
		readOnly:  opts.ReadOnly,
		log:       log,
		extShift:  uint(bits.TrailingZeros32(layout.Geometry.ALExtentSize)),
		granShift: uint(bits.TrailingZeros32(layout.Geometry.BitmapGranularity)),
	}
	v.flusher = newSyncer(devs.Data.Sync)
	v.mu.sb = sb
	v.mu.nextCopy = 1 - res.Copy
	v.mu.want = make(map[uint32]struct{})
	v.mu.committed = make(chan struct{})
	if err := v.loadActivityLog(); err != nil {
		return nil, rep, err
	}
	torn, err := v.loadBitmaps()
	if err != nil {
		return nil, rep, err
	}
	rep.TornBitmapPages = torn
	if torn > 0 {
		log.Warn("bitmap pages failed their checks and were read as all out of sync", "volume", name, "pages", torn)
	}
	if sb.Flags&meta.FlagALClean == 0 {
		rep.ALReplayed = v.applyActivityLog()
		if sb.Flags&meta.FlagPrimary != 0 {
			rep.CrashedPrimary = true
			v.mu.sb.Flags |= meta.FlagCrashedPrimary
		} else if rep.ALReplayed > 0 && sb.Flags&meta.FlagCrashedPrimary == 0 {
			// (A crashed primary that crashed again as secondary before
			// resyncing stays a crashed primary: its log may still hold
			// writes it acknowledged that its peers never got.)
			v.mu.sb.Flags |= meta.FlagCrashedSecondary
		}
		log.Info("volume was not detached cleanly; activity-log extents marked out of sync",
			"volume", name, "extents", rep.ALReplayed, "crashed_primary", rep.CrashedPrimary)
	}
	if opts.ReadOnly {
		// Nothing is written: what the replay found stays in memory, and
		// the next read-write attach replays the activity log again.
		return v, rep, nil
	}
	if err := v.writeBitmapPages(v.allDirtyPages()); err != nil {
		return nil, rep, err
	}
	// From now on a crash leaves the activity log to replay.
	v.mu.sb.Flags &^= meta.FlagALClean
	if err := v.writeSuperblock(); err != nil {
		return nil, rep, err
	}
	return v, rep, nil
}

func (v *Volume) loadActivityLog() error {
	n := int(v.layout.Geometry.ALExtents)
	var txs []meta.ALTransaction
	b := make([]byte, meta.BlockSize)
	for i := 0; i < v.layout.ALTransactions; i++ {
		if err := disk.ReadFull(v.md, b, v.layout.ALTransactionOffset(i)); err != nil {
			return fmt.Errorf("read activity log: %w", err)
		}
		tx, err := meta.UnmarshalALTransaction(b, v.mu.sb.DeviceUUID)
		if err != nil {
			continue // torn or never written: the others cover it
		}
		txs = append(txs, tx)
	}
	slots, last := meta.ReplayAL(txs, n)
	v.mu.al = activitylog.New(slots, last, v.layout.ALTransactions)
	return nil
}

func (v *Volume) loadBitmaps() (torn int, err error) {
	nbits := v.layout.BitmapBits()
	b := make([]byte, meta.BlockSize)
	words := make([]uint64, meta.WordsPerPage)
	for s := 0; s < v.layout.Geometry.MaxPeers; s++ {
		bm := bitmap.New(nbits)
		for p := int64(0); p < v.layout.BitmapPagesPerSlot; p++ {
			if err := disk.ReadFull(v.md, b, v.layout.BitmapPageOffset(s, p)); err != nil {
				return torn, fmt.Errorf("read bitmap: %w", err)
			}
			if err := meta.UnmarshalBitmapPage(b, v.layout.BitmapPageIndex(s, p), v.mu.sb.DeviceUUID, words); err != nil {
				bm.SetPage(p)
				torn++
				continue
			}
			bm.Load(p, words)
		}
		v.mu.bitmaps = append(v.mu.bitmaps, bm)
	}
	return torn, nil
}

// applyActivityLog marks every extent in the log out of sync for every
// assigned peer slot. It returns the number of extents.
func (v *Volume) applyActivityLog() int {
	exts := v.mu.al.Extents()
	for _, e := range exts {
		first, last := v.extentBits(e)
		for s := 0; s < v.layout.Geometry.MaxPeers; s++ {
			if v.mu.sb.Peers[s].NodeID != meta.NoNode {
				v.mu.bitmaps[s].Set(first, last)
			}
		}
	}
	return len(exts)
}

// extentBits is the range of bitmap bits an activity-log extent covers.
func (v *Volume) extentBits(e uint32) (first, last int64) {
	per := int64(1) << (v.extShift - v.granShift)
	return int64(e) * per, int64(e)*per + per - 1
}

type pageRef struct {
	slot int
	page int64
}

func (v *Volume) allDirtyPages() []pageRef {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.allDirtyPagesLocked()
}

func (v *Volume) allDirtyPagesLocked() []pageRef {
	var out []pageRef
	for s, bm := range v.mu.bitmaps {
		for _, p := range bm.AllDirtyPages() {
			out = append(out, pageRef{s, p})
		}
	}
	return out
}

// writeBitmapPages writes the given pages (snapshotting them under v.mu)
// and syncs the metadata device. On failure the pages are dirty again.
func (v *Volume) writeBitmapPages(pages []pageRef) error {
	if len(pages) == 0 {
		return nil
	}
	v.mu.Lock()
	snaps := make([][]uint64, len(pages))
	for i, pr := range pages {
		snaps[i] = v.mu.bitmaps[pr.slot].Snapshot(pr.page)
	}
	devUUID := v.mu.sb.DeviceUUID
	v.mu.Unlock()
	err := v.writePages(pages, snaps, devUUID)
	if err == nil {
		if err = v.md.Sync(); err != nil {
			err = fmt.Errorf("sync bitmap: %w", err)
		}
	}
	if err != nil {
		v.mu.Lock()
		for _, pr := range pages {
			v.mu.bitmaps[pr.slot].MarkDirty(pr.page)
		}
		v.mu.Unlock()
	}
	return err
}

// writePages writes bitmap page snapshots without syncing.
func (v *Volume) writePages(pages []pageRef, snaps [][]uint64, devUUID uint64) error {
	b := make([]byte, meta.BlockSize)
	for i, pr := range pages {
		meta.MarshalBitmapPage(b, snaps[i], v.layout.BitmapPageIndex(pr.slot, pr.page), devUUID)
		if err := disk.WriteFull(v.md, b, v.layout.BitmapPageOffset(pr.slot, pr.page)); err != nil {
			return fmt.Errorf("write bitmap: %w", err)
		}
	}
	return nil
}

// writeSuperblock writes the in-memory superblock to the next copy.
func (v *Volume) writeSuperblock() error {
	v.sbMu.Lock()
	defer v.sbMu.Unlock()
	v.mu.Lock()
	v.mu.sb.Seq++
	sb := v.mu.sb
	into := v.mu.nextCopy
	v.mu.Unlock()
	if err := meta.WriteSuperblock(v.md, v.sbOff, into, &sb); err != nil {
		return err
	}
	v.mu.Lock()
	v.mu.nextCopy = 1 - into
	v.mu.Unlock()
	return nil
}

// Name is the volume's name.
func (v *Volume) Name() string { return v.name }

// Size is the size of the data area in bytes.
func (v *Volume) Size() int64 { return v.layout.DataSize }

// ReadOnly reports whether the volume refuses writes.
func (v *Volume) ReadOnly() bool { return v.readOnly }

// Layout returns the metadata layout.
func (v *Volume) Layout() meta.Layout { return v.layout }

// SetPrimary records in the metadata whether this node is primary, so that
// a crash while primary is recognised at the next attach.
func (v *Volume) SetPrimary(primary bool) error {
	v.mu.Lock()
	if primary {
		v.mu.sb.Flags |= meta.FlagPrimary
	} else {
		v.mu.sb.Flags &^= meta.FlagPrimary
	}
	v.mu.Unlock()
	return v.writeSuperblock()
}

// Close detaches the volume cleanly: it waits for I/O in flight, syncs the
// data, writes the bitmap, marks the activity log clean and closes the
// devices. After a failed Close the metadata still says "not clean", so
// the next Attach replays the activity log.
func (v *Volume) Close() error {
	if v.detached.Swap(true) {
		return nil
	}
	v.gate.Lock() // waits for every I/O in flight
	defer v.gate.Unlock()
	var errs []error
	if v.readOnly {
		return v.closeDevices()
	}
	if err := v.devs.Data.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("sync data: %w", err))
	}
	if v.failed.Load() != nil {
		errs = append(errs, ErrDiskFailed)
	}
	if err := v.writeBitmapPages(v.allDirtyPages()); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		v.mu.Lock()
		v.mu.sb.Flags |= meta.FlagALClean
		v.mu.sb.Flags &^= meta.FlagPrimary
		// With peers, CrashedPrimary stays until a resync after the crash
		// has run (the engine clears it); without, there is nobody to
		// resync with and a clean shutdown ends it.
		if !v.hasPeersLocked() {
			v.mu.sb.Flags &^= meta.FlagCrashedPrimary | meta.FlagCrashedSecondary
		}
		v.mu.Unlock()
		if err := v.writeSuperblock(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, v.closeDevices())
	return errors.Join(errs...)
}

func (v *Volume) closeDevices() error {
	var errs []error
	if v.devs.Meta != nil {
		errs = append(errs, v.devs.Meta.Close())
	}
	errs = append(errs, v.devs.Data.Close())
	return errors.Join(errs...)
}

func (v *Volume) hasPeersLocked() bool {
	for s := 0; s < v.layout.Geometry.MaxPeers; s++ {
		if v.mu.sb.Peers[s].NodeID != meta.NoNode {
			return true
		}
	}
	return false
}
