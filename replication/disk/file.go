package disk

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// File is a Device backed by a regular file or a block device.
type File struct {
	f     *os.File
	fd    int
	dsync *os.File // the same file opened O_DSYNC, for FUA writes
	size  int64
	block bool
	// noWaitRefused: the kernel refused RWF_NOWAIT once, so ReadAtNoWait
	// stops asking.
	noWaitRefused atomic.Bool
}

// OpenOptions say how to open a File.
type OpenOptions struct {
	// ReadOnly opens without write access.
	ReadOnly bool
	// CreateSize, if positive and the path does not exist, creates a sparse
	// regular file of this many bytes.
	CreateSize int64
}

// Open opens path as a Device. A block device is opened exclusively
// (O_EXCL: it fails if mounted or held by another holder); a regular file is
// locked with flock so that two daemons cannot serve it at once.
func Open(path string, opts OpenOptions) (*File, error) {
	flags := os.O_RDWR
	if opts.ReadOnly {
		flags = os.O_RDONLY
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && opts.CreateSize > 0:
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		if err := f.Truncate(opts.CreateSize); err != nil {
			f.Close()
			os.Remove(path)
			return nil, fmt.Errorf("create %s with %d bytes: %w", path, opts.CreateSize, err)
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		st, err = os.Stat(path)
		if err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	block := st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
	if !block && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file or block device (%v)", path, st.Mode().Type())
	}
	if block {
		flags |= unix.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, err
	}
	d := &File{f: f, fd: int(f.Fd()), block: block}
	if !block {
		how := unix.LOCK_EX
		if opts.ReadOnly {
			how = unix.LOCK_SH
		}
		if err := unix.Flock(d.fd, how|unix.LOCK_NB); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s is in use by another process (flock: %w)", path, err)
		}
	}
	if block {
		n, err := blockSize(d.fd)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: BLKGETSIZE64: %w", path, err)
		}
		d.size = int64(n)
	} else {
		d.size = st.Size()
	}
	if !opts.ReadOnly {
		// The O_DSYNC descriptor shares the open file's exclusivity (same
		// process), so no second O_EXCL is needed or possible for a block device.
		ds, err := os.OpenFile(path, os.O_WRONLY|unix.O_DSYNC, 0)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: open O_DSYNC: %w", path, err)
		}
		d.dsync = ds
	}
	return d, nil
}

// IsBlockDevice reports whether the File is a block device.
func (d *File) IsBlockDevice() bool { return d.block }

// Size returns the size the device had when opened.
func (d *File) Size() int64 { return d.size }

// ReadAt reads with pread.
func (d *File) ReadAt(p []byte, off int64) (int, error) {
	if err := checkRange(d.size, off, int64(len(p))); err != nil {
		return 0, err
	}
	return pfull(unix.Pread, d.fd, p, off)
}

// ReadAtNoWait reads with preadv2(RWF_NOWAIT), which fails with EAGAIN (or
// reads short) instead of waiting for the device when some of the range is
// not in the page cache. Kernels before 4.14 refuse the flag: then it
// reports false from then on and callers use ReadAt, which also reports
// any other error.
func (d *File) ReadAtNoWait(p []byte, off int64) (bool, error) {
	if err := checkRange(d.size, off, int64(len(p))); err != nil {
		return false, err
	}
	if d.noWaitRefused.Load() {
		return false, nil
	}
	iov := [][]byte{p}
	for {
		n, err := unix.Preadv2(d.fd, iov, off, unix.RWF_NOWAIT)
		switch err {
		case nil:
			return n == len(p), nil
		case unix.EINTR:
			continue
		case unix.EOPNOTSUPP, unix.EINVAL, unix.ENOSYS:
			d.noWaitRefused.Store(true)
		}
		return false, nil
	}
}

// WriteAt writes with pwrite; the data may sit in the page cache until Sync.
func (d *File) WriteAt(p []byte, off int64) (int, error) {
	if err := checkRange(d.size, off, int64(len(p))); err != nil {
		return 0, err
	}
	return pfull(unix.Pwrite, d.fd, p, off)
}

// WriteAtSync writes through the O_DSYNC descriptor: the write is durable
// when it returns.
func (d *File) WriteAtSync(p []byte, off int64) (int, error) {
	if err := checkRange(d.size, off, int64(len(p))); err != nil {
		return 0, err
	}
	if d.dsync == nil {
		return 0, fmt.Errorf("write to %s: opened read-only: %w", d.f.Name(), os.ErrPermission)
	}
	return pfull(unix.Pwrite, int(d.dsync.Fd()), p, off)
}

// blockSize asks the kernel for a block device's size (BLKGETSIZE64).
func blockSize(fd int) (uint64, error) {
	var n uint64
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n)))
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// pfull repeats pread/pwrite until the buffer is done, retrying EINTR.
func pfull(op func(int, []byte, int64) (int, error), fd int, p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := op(fd, p[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		if n == 0 {
			return done, fmt.Errorf("short transfer at %d: %w", off+int64(done), unix.EIO)
		}
		done += n
	}
	return done, nil
}

// Sync is fdatasync.
func (d *File) Sync() error {
	for {
		err := unix.Fdatasync(d.fd)
		if err != unix.EINTR {
			return err
		}
	}
}

// Zero zeroes a range with fallocate (PUNCH_HOLE to deallocate, ZERO_RANGE
// otherwise), which works on regular files and, since Linux 4.9, block
// devices. Where the kernel or filesystem refuses (tmpfs has no ZERO_RANGE;
// block devices want aligned ranges), it writes zeroes.
func (d *File) Zero(off, n int64, deallocate bool) error {
	if err := checkRange(d.size, off, n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	mode := uint32(unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE)
	if deallocate {
		mode = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
	}
	err := unix.Fallocate(d.fd, mode, off, n)
	if err == nil {
		return nil
	}
	if err == unix.EOPNOTSUPP || err == unix.EINVAL || err == unix.ENODEV {
		return writeZeroes(d, off, n)
	}
	return fmt.Errorf("fallocate %s [%d, +%d): %w", d.f.Name(), off, n, err)
}

// Close closes both descriptors.
func (d *File) Close() error {
	var errs []error
	if d.dsync != nil {
		errs = append(errs, d.dsync.Close())
	}
	errs = append(errs, d.f.Close())
	return errors.Join(errs...)
}
