package disk

import (
	"fmt"
	"io"
)

// Device is random-access storage of a fixed size.
type Device interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes every write that completed before the call durable.
	Sync() error
	// Size is the usable size in bytes, fixed when the device is opened.
	Size() int64
	Close() error
}

// SyncWriter is implemented by devices that can make a single write durable
// without syncing everything else (FUA).
type SyncWriter interface {
	WriteAtSync(p []byte, off int64) (int, error)
}

// Zeroer is implemented by devices that can zero a range without writing a
// buffer of zeroes. With deallocate the range may be unmapped (hole punched);
// without it the blocks stay allocated. Either way it reads back as zeroes.
type Zeroer interface {
	Zero(off, n int64, deallocate bool) error
}

// NoWaitReader is implemented by devices that can tell a read served from
// memory (the page cache) from one that has to wait for the device, so
// that callers can serve the first kind without handing it to another
// goroutine.
type NoWaitReader interface {
	// ReadAtNoWait reads all of p at off if that needs no device I/O and
	// returns true; otherwise it returns false and p's contents are
	// undefined. It may leave errors to ReadAt by returning false.
	ReadAtNoWait(p []byte, off int64) (bool, error)
}

var (
	_ Device       = (*File)(nil)
	_ SyncWriter   = (*File)(nil)
	_ Zeroer       = (*File)(nil)
	_ NoWaitReader = (*File)(nil)
	_ Device       = (*Mem)(nil)
	_ Zeroer       = (*Mem)(nil)
	_ NoWaitReader = (*Mem)(nil)
	_ Device       = (*Faulty)(nil)
	_ SyncWriter   = (*Faulty)(nil)
	_ Zeroer       = (*Faulty)(nil)
	_ Device       = (*Crash)(nil)
	_ SyncWriter   = (*Crash)(nil)
)

// WriteSync writes p at off and makes it durable, using the device's FUA
// path when it has one and a full Sync otherwise.
func WriteSync(d Device, p []byte, off int64) error {
	if sw, ok := d.(SyncWriter); ok {
		_, err := sw.WriteAtSync(p, off)
		return err
	}
	if _, err := d.WriteAt(p, off); err != nil {
		return err
	}
	return d.Sync()
}

// zeroChunk bounds the buffer ZeroRange writes with when a device has no
// native zeroing.
const zeroChunk = 1 << 20

var zeroes = make([]byte, zeroChunk)

// ZeroRange makes [off, off+n) read as zeroes, natively if the device can.
func ZeroRange(d Device, off, n int64, deallocate bool) error {
	if err := checkRange(d.Size(), off, n); err != nil {
		return err
	}
	if z, ok := d.(Zeroer); ok {
		return z.Zero(off, n, deallocate)
	}
	return writeZeroes(d, off, n)
}

func writeZeroes(d io.WriterAt, off, n int64) error {
	for n > 0 {
		c := min(n, zeroChunk)
		if _, err := d.WriteAt(zeroes[:c], off); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}

// ReadFull reads exactly len(p) bytes at off.
func ReadFull(d io.ReaderAt, p []byte, off int64) error {
	n, err := d.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at %d: got %d: %w", len(p), off, n, err)
}

// WriteFull writes all of p at off.
func WriteFull(d io.WriterAt, p []byte, off int64) error {
	n, err := d.WriteAt(p, off)
	if err == nil && n != len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("write %d bytes at %d: %w", len(p), off, err)
	}
	return nil
}

func checkRange(size, off, n int64) error {
	if off < 0 || n < 0 || off > size || n > size-off {
		return fmt.Errorf("%w: [%d, +%d) on a device of %d bytes", ErrOutOfRange, off, n, size)
	}
	return nil
}
