package disk

import "sync"

const memPage = 4096

// Mem is a sparse in-memory Device. Sync does nothing: everything written is
// "durable" until the process exits.
type Mem struct {
	size int64
	mu   struct {
		sync.RWMutex
		pages  map[int64]*[memPage]byte
		closed bool
	}
}

// NewMem returns a zero-filled in-memory device of size bytes.
func NewMem(size int64) *Mem {
	m := &Mem{size: size}
	m.mu.pages = make(map[int64]*[memPage]byte)
	return m
}

// Size returns the device size.
func (m *Mem) Size() int64 { return m.size }

// ReadAt copies out of the pages; missing pages read as zeroes.
func (m *Mem) ReadAt(p []byte, off int64) (int, error) {
	if err := checkRange(m.size, off, int64(len(p))); err != nil {
		return 0, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.mu.closed {
		return 0, ErrClosed
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		pg, in := pos/memPage, int(pos%memPage)
		n := min(len(p)-done, memPage-in)
		if page := m.mu.pages[pg]; page != nil {
			copy(p[done:done+n], page[in:])
		} else {
			clear(p[done : done+n])
		}
		done += n
	}
	return done, nil
}

// ReadAtNoWait is ReadAt: memory never waits for a device.
func (m *Mem) ReadAtNoWait(p []byte, off int64) (bool, error) {
	_, err := m.ReadAt(p, off)
	return err == nil, err
}

// WriteAt copies into the pages.
func (m *Mem) WriteAt(p []byte, off int64) (int, error) {
	if err := checkRange(m.size, off, int64(len(p))); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return 0, ErrClosed
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		pg, in := pos/memPage, int(pos%memPage)
		n := min(len(p)-done, memPage-in)
		page := m.mu.pages[pg]
		if page == nil {
			page = new([memPage]byte)
			m.mu.pages[pg] = page
		}
		copy(page[in:], p[done:done+n])
		done += n
	}
	return done, nil
}

// Zero clears the range, dropping whole pages.
func (m *Mem) Zero(off, n int64, _ bool) error {
	if err := checkRange(m.size, off, n); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return ErrClosed
	}
	for pos := off; pos < off+n; {
		pg, in := pos/memPage, pos%memPage
		c := min(off+n-pos, memPage-in)
		if page := m.mu.pages[pg]; page != nil {
			if c == memPage {
				delete(m.mu.pages, pg)
			} else {
				clear(page[in : in+c])
			}
		}
		pos += c
	}
	return nil
}

// Sync returns nil unless the device is closed.
func (m *Mem) Sync() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.mu.closed {
		return ErrClosed
	}
	return nil
}

// Close marks the device closed; later calls fail with ErrClosed.
func (m *Mem) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.closed = true
	return nil
}

// Reopen clears the closed mark so a test can attach the same storage again,
// as a restarted process would reopen the same file.
func (m *Mem) Reopen() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.closed = false
}
