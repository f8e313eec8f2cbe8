package disk

import (
	"math/rand/v2"
	"sort"
	"sync"
)

// SectorSize is the granularity at which Crash may tear writes.
const SectorSize = 512

// Crash is an in-memory Device that models a volatile write cache. Writes
// land in a cache of sectors; Sync moves the cache to stable storage. A
// power cut (CrashClone) keeps stable storage and any subset of cached
// sectors, so a multi-sector write can be torn and writes can reach the disk
// out of order.
type Crash struct {
	size int64
	mu   struct {
		sync.Mutex
		stable map[int64]*[SectorSize]byte
		cache  map[int64]*[SectorSize]byte
		closed bool
		syncs  int
	}
}

// NewCrash returns a zero-filled crash-simulating device of size bytes.
func NewCrash(size int64) *Crash {
	c := &Crash{size: size}
	c.mu.stable = make(map[int64]*[SectorSize]byte)
	c.mu.cache = make(map[int64]*[SectorSize]byte)
	return c
}

// Size returns the device size.
func (c *Crash) Size() int64 { return c.size }

// ReadAt returns the newest contents: cached sectors over stable ones.
func (c *Crash) ReadAt(p []byte, off int64) (int, error) {
	if err := checkRange(c.size, off, int64(len(p))); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return 0, ErrClosed
	}
	c.eachSectorLocked(off, len(p), func(sec int64, in, lo, hi int) {
		s := c.mu.cache[sec]
		if s == nil {
			s = c.mu.stable[sec]
		}
		if s == nil {
			clear(p[lo:hi])
			return
		}
		copy(p[lo:hi], s[in:])
	})
	return len(p), nil
}

// WriteAt puts the data in the volatile cache.
func (c *Crash) WriteAt(p []byte, off int64) (int, error) {
	return c.write(p, off, false)
}

// WriteAtSync writes straight to stable storage (FUA); the cache copy of
// those sectors, older than this write, is dropped.
func (c *Crash) WriteAtSync(p []byte, off int64) (int, error) {
	return c.write(p, off, true)
}

func (c *Crash) write(p []byte, off int64, durable bool) (int, error) {
	if err := checkRange(c.size, off, int64(len(p))); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return 0, ErrClosed
	}
	c.eachSectorLocked(off, len(p), func(sec int64, in, lo, hi int) {
		var s [SectorSize]byte
		if old := c.mu.cache[sec]; old != nil {
			s = *old
		} else if old := c.mu.stable[sec]; old != nil {
			s = *old
		}
		copy(s[in:], p[lo:hi])
		stored := &s
		if s == zeroSector {
			stored = &zeroSector
		}
		if durable {
			c.store(sec, stored)
			delete(c.mu.cache, sec)
		} else {
			c.mu.cache[sec] = stored
		}
	})
	return len(p), nil
}

// zeroSector stands for every all-zero sector: stable storage does not
// keep them (absent reads as zeroes), the cache points here. Sectors are
// never changed once stored, so clones share them.
var zeroSector [SectorSize]byte

// store puts a sector in stable storage; c.mu is held.
func (c *Crash) store(sec int64, s *[SectorSize]byte) {
	if s == &zeroSector {
		delete(c.mu.stable, sec)
		return
	}
	c.mu.stable[sec] = s
}

func (c *Crash) eachSectorLocked(off int64, n int, f func(sec int64, in, lo, hi int)) {
	done := 0
	for done < n {
		pos := off + int64(done)
		sec, in := pos/SectorSize, int(pos%SectorSize)
		k := min(n-done, SectorSize-in)
		f(sec, in, done, done+k)
		done += k
	}
}

// Sync moves every cached sector to stable storage.
func (c *Crash) Sync() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return ErrClosed
	}
	for sec, s := range c.mu.cache {
		c.store(sec, s)
	}
	clear(c.mu.cache)
	c.mu.syncs++
	return nil
}

// Syncs counts completed Sync calls.
func (c *Crash) Syncs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.syncs
}

// Unsynced returns how many sectors sit in the volatile cache.
func (c *Crash) Unsynced() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.mu.cache)
}

// Close marks the device closed.
func (c *Crash) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.closed = true
	return nil
}

// CrashClone returns the disk as found after a power cut now: stable storage
// plus, for each cached sector, the cached contents if keep(sector) is true.
// The original is unchanged. keep nil keeps no cached sector.
func (c *Crash) CrashClone(keep func(sector int64) bool) *Crash {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := NewCrash(c.size)
	for sec, s := range c.mu.stable {
		out.mu.stable[sec] = s
	}
	secs := make([]int64, 0, len(c.mu.cache))
	for sec := range c.mu.cache {
		secs = append(secs, sec)
	}
	// Sorted so that a seeded keep function gives the same result each run.
	sort.Slice(secs, func(i, j int) bool { return secs[i] < secs[j] })
	for _, sec := range secs {
		if keep != nil && keep(sec) {
			out.store(sec, c.mu.cache[sec])
		}
	}
	return out
}

// RandomKeep returns a keep function for CrashClone that keeps each cached
// sector with probability 1/2, drawn from r.
func RandomKeep(r *rand.Rand) func(int64) bool {
	return func(int64) bool { return r.IntN(2) == 0 }
}
