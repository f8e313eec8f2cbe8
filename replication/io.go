package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/replicad/replicad/replication/activitylog"
	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/meta"
)

// ReadAt fills p from offset off.
func (v *Volume) ReadAt(ctx context.Context, p []byte, off int64) error {
	return v.read(p, off, func() error { return disk.ReadFull(v.devs.Data, p, off) })
}

// read checks the range, holds the volume attached while read runs, and
// reports read's device error as ErrIO.
func (v *Volume) read(p []byte, off int64, read func() error) error {
	if err := v.checkRange(off, int64(len(p)), false); err != nil {
		return err
	}
	if !v.enter() {
		return ErrDetached
	}
	defer v.gate.RUnlock()
	if err := read(); err != nil {
		return fmt.Errorf("%w: %v", ErrIO, err)
	}
	return nil
}

// ReadAtNoWait is ReadAt if the data can be read without waiting for the
// device (it is in the page cache): then it returns true. Otherwise it
// returns false having done nothing, and the caller uses ReadAt; so does a
// caller whose device cannot tell.
func (v *Volume) ReadAtNoWait(p []byte, off int64) (bool, error) {
	nw, ok := v.devs.Data.(disk.NoWaitReader)
	if !ok {
		return false, nil
	}
	done := false
	err := v.read(p, off, func() (err error) {
		done, err = nw.ReadAtNoWait(p, off)
		return err
	})
	return done && err == nil, err
}

// WriteAt writes p at off. With fua the write is durable when WriteAt
// returns; otherwise after the next Flush.
func (v *Volume) WriteAt(ctx context.Context, p []byte, off int64, fua bool) error {
	return v.modify(ctx, off, int64(len(p)), func() error {
		if fua {
			return disk.WriteSync(v.devs.Data, p, off)
		}
		return disk.WriteFull(v.devs.Data, p, off)
	})
}

// WriteZeroes makes [off, off+n) read as zeroes. With deallocate the space
// may be released (TRIM, or WRITE_ZEROES without NO_HOLE); the range still
// reads as zeroes, so replicas that zero the same range stay identical.
func (v *Volume) WriteZeroes(ctx context.Context, off, n int64, deallocate, fua bool) error {
	m, err := v.BeginModify(ctx, off, n)
	if err != nil || m == nil {
		return err
	}
	defer m.End()
	return m.Zero(deallocate, fua)
}

// Flush returns when every write that returned before the call is durable.
func (v *Volume) Flush(ctx context.Context) error {
	if !v.enter() {
		return ErrDetached
	}
	defer v.gate.RUnlock()
	if err := v.failed.Load(); err != nil {
		return fmt.Errorf("%w: %v", ErrDiskFailed, *err)
	}
	if err := v.flusher.flush(ctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		v.fail(err)
		return fmt.Errorf("%w: sync: %v", ErrDiskFailed, err)
	}
	return nil
}

// ErrIO wraps a device error on a single request; the volume keeps serving.
var ErrIO = errors.New("I/O error")

// enter takes the I/O gate; false if the volume is detached.
func (v *Volume) enter() bool {
	v.gate.RLock()
	if v.detached.Load() {
		v.gate.RUnlock()
		return false
	}
	return true
}

func (v *Volume) checkRange(off, n int64, write bool) error {
	size := v.layout.DataSize
	if off < 0 || n < 0 || off > size || n > size-off {
		if write && off >= 0 && n >= 0 {
			return fmt.Errorf("%w: [%d, +%d) on a volume of %d bytes", ErrNoSpace, off, n, size)
		}
		return fmt.Errorf("%w: [%d, +%d) on a volume of %d bytes", ErrOutOfRange, off, n, size)
	}
	return nil
}

// modify runs a data-changing operation under the write-ahead rule.
func (v *Volume) modify(ctx context.Context, off, n int64, op func() error) error {
	m, err := v.BeginModify(ctx, off, n)
	if err != nil || m == nil {
		return err
	}
	defer m.End()
	return m.do(op)
}

// Modification is a write in progress whose extents are in the activity
// log (on stable storage) and whose bits are set in every tracked bitmap.
// A replicated write begins its modification before it sends the data to
// any peer: if this node then loses power before its own write, the
// activity log still names the extent, so the block is resynced rather
// than left different from the peer that got it.
type Modification struct {
	v           *Volume
	off, n      int64
	first, last uint32
}

// BeginModify checks the range and brings [off, off+n) into the activity
// log. A nil Modification with a nil error means n == 0: nothing to do.
// End must follow.
func (v *Volume) BeginModify(ctx context.Context, off, n int64) (*Modification, error) {
	if v.readOnly {
		return nil, ErrReadOnly
	}
	if err := v.checkRange(off, n, true); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	if !v.enter() {
		return nil, ErrDetached
	}
	if err := v.failed.Load(); err != nil {
		v.gate.RUnlock()
		return nil, fmt.Errorf("%w: %v", ErrDiskFailed, *err)
	}
	m := &Modification{v: v, off: off, n: n, first: uint32(off >> v.extShift), last: uint32((off + n - 1) >> v.extShift)}
	if err := v.acquire(ctx, m.first, m.last, off, n); err != nil {
		v.gate.RUnlock()
		return nil, err
	}
	return m, nil
}

// Write writes p at the modification's offset (len(p) must be its length).
func (m *Modification) Write(p []byte, fua bool) error {
	return m.do(func() error {
		if fua {
			return disk.WriteSync(m.v.devs.Data, p, m.off)
		}
		return disk.WriteFull(m.v.devs.Data, p, m.off)
	})
}

// Zero zeroes the modification's range; with fua it is durable on return.
func (m *Modification) Zero(deallocate, fua bool) error {
	err := m.do(func() error { return disk.ZeroRange(m.v.devs.Data, m.off, m.n, deallocate) })
	if err == nil && fua {
		if err = m.v.flusher.flush(context.Background()); err != nil {
			m.v.fail(err)
			err = fmt.Errorf("%w: sync: %v", ErrDiskFailed, err)
		}
	}
	return err
}

func (m *Modification) do(op func() error) error {
	if err := op(); err != nil {
		m.v.fail(err)
		return fmt.Errorf("%w: %v", ErrIO, err)
	}
	return nil
}

// End takes the modification's extents out of use.
func (m *Modification) End() {
	m.v.release(m.first, m.last)
	m.v.gate.RUnlock()
}

// fail records the first device error; from then on writes and flushes fail.
func (v *Volume) fail(err error) {
	if v.failed.CompareAndSwap(nil, &err) {
		v.log.Error("backing device failed; refusing further writes and flushes until re-attached",
			"volume", v.name, "err", err)
	}
}

// acquire brings [first, last] into the activity log (writing transactions
// as needed, one writer at a time, others waiting for its commit) and takes
// a reference on them. It also sets the bits of [off, off+n) in every
// tracked bitmap.
func (v *Volume) acquire(ctx context.Context, first, last uint32, off, n int64) error {
	v.mu.Lock()
	for {
		if err := v.failed.Load(); err != nil {
			v.mu.Unlock()
			return fmt.Errorf("%w: %v", ErrDiskFailed, *err)
		}
		if v.mu.al.TryAcquire(first, last) {
			if len(v.mu.tracked) > 0 {
				b0, b1 := off>>v.granShift, (off+n-1)>>v.granShift
				for _, s := range v.mu.tracked {
					v.mu.bitmaps[s].Set(b0, b1)
				}
			}
			v.mu.Unlock()
			return nil
		}
		for e := first; ; e++ {
			if !v.mu.al.Contains(e) {
				v.mu.want[e] = struct{}{}
			}
			if e == last {
				break
			}
		}
		if !v.mu.committing {
			v.mu.committing = true
			err := v.commitLocked(ctx)
			v.mu.committing = false
			// Wake the waiters whatever happened: they either find their
			// extents committed or take over as committer.
			close(v.mu.committed)
			v.mu.committed = make(chan struct{})
			if err != nil {
				v.mu.Unlock()
				return err
			}
			continue
		}
		wait := v.mu.committed
		v.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
		v.mu.Lock()
	}
}

func (v *Volume) release(first, last uint32) {
	v.mu.Lock()
	v.mu.al.Release(first, last)
	if v.mu.fullWait != nil {
		close(v.mu.fullWait)
		v.mu.fullWait = nil
	}
	v.mu.Unlock()
}

// commitLocked writes activity-log transactions until every wanted extent is
// in the log. Called and returns with v.mu held; drops it around I/O.
func (v *Volume) commitLocked(ctx context.Context) error {
	for len(v.mu.want) > 0 {
		want := make([]uint32, 0, len(v.mu.want))
		for e := range v.mu.want {
			if v.mu.al.Contains(e) {
				delete(v.mu.want, e)
				continue
			}
			want = append(want, e)
		}
		if len(want) == 0 {
			break
		}
		slices.Sort(want)
		p, err := v.mu.al.Prepare(want)
		if errors.Is(err, activitylog.ErrFull) {
			if v.mu.fullWait == nil {
				v.mu.fullWait = make(chan struct{})
			}
			wait := v.mu.fullWait
			v.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				v.mu.Lock()
				return ctx.Err()
			}
			v.mu.Lock()
			continue
		}
		if err != nil {
			return err
		}
		// Bits of the extents leaving the log must be on disk first.
		var pages []pageRef
		for _, e := range p.Evicted {
			b0, b1 := v.extentBits(e)
			for s, bm := range v.mu.bitmaps {
				for _, pg := range bm.DirtyPages(b0, b1) {
					pages = append(pages, pageRef{s, pg})
				}
			}
		}
		snaps := make([][]uint64, len(pages))
		for i, pr := range pages {
			snaps[i] = v.mu.bitmaps[pr.slot].Snapshot(pr.page)
		}
		devUUID := v.mu.sb.DeviceUUID
		pos := v.mu.al.RingPosition(p.Tx.Seq)
		v.mu.Unlock()
		err = v.writeTransaction(pages, snaps, devUUID, p.Tx, pos, len(p.Evicted) > 0)
		v.mu.Lock()
		if err != nil {
			v.mu.al.Abort(p)
			for _, pr := range pages {
				v.mu.bitmaps[pr.slot].MarkDirty(pr.page)
			}
			v.fail(err)
			return fmt.Errorf("%w: activity log: %v", ErrIO, err)
		}
		v.mu.al.Commit(p)
		for _, e := range p.Added {
			delete(v.mu.want, e)
		}
		// Let writers whose extents are now in the log go ahead.
		close(v.mu.committed)
		v.mu.committed = make(chan struct{})
	}
	return nil
}

func (v *Volume) writeTransaction(pages []pageRef, snaps [][]uint64, devUUID uint64, tx meta.ALTransaction, pos int, evicting bool) error {
	if evicting {
		// An extent leaving the log must have its bits and its data durable
		// first: after a power cut nothing else would mark a write in it
		// that never reached the disk, though peers have it.
		if err := v.writePages(pages, snaps, devUUID); err != nil {
			return err
		}
		if err := v.devs.Data.Sync(); err != nil {
			return fmt.Errorf("sync data before the activity log lets extents go: %w", err)
		}
		if !v.layout.Internal {
			if err := v.md.Sync(); err != nil {
				return fmt.Errorf("sync bitmap: %w", err)
			}
		}
	}
	b, err := tx.Marshal(devUUID)
	if err != nil {
		return err
	}
	// The transaction alone is made durable (O_DSYNC on a file): an
	// fdatasync would also write back every dirty data page of an internal
	// layout, which the log exists to make unnecessary (docs/metadata.md).
	return disk.WriteSync(v.md, b, v.layout.ALTransactionOffset(pos))
}
