package fence

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/replicad/replicad/fence/journal"
)

// historyStore is the history file: journal frames of JSON events, appended
// with one write and an fsync each. Reads happen once, at open; queries are
// answered from the folded ledger in memory.
type historyStore struct {
	path string
	// mu serialises appends and guards the ledger. It is held across the
	// file write on purpose: records must reach the file in ledger order.
	// It is never taken while the Fencer's own lock is held.
	mu struct {
		sync.Mutex
		f      *os.File
		size   int64
		ledger *ledger
	}
}

// HistoryReport says what opening the history found.
type HistoryReport struct {
	Records int
	// Damaged lists skipped byte ranges: a torn tail from a crash during
	// an append (truncated away), or corrupt records in the middle (kept
	// on disk, not shown).
	Damaged []journal.Damage
	// Truncated is how many torn bytes were cut from the end.
	Truncated int64
	// Undecodable counts intact records whose JSON could not be used.
	Undecodable int
}

func openHistory(path string) (*historyStore, HistoryReport, error) {
	var rep HistoryReport
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, rep, fmt.Errorf("%w: %v", ErrHistory, err)
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, rep, fmt.Errorf("%w: %v", ErrHistory, err)
	}
	// One writer per file: a second daemon on the same configuration must
	// not fold, truncate or append to a history another one is writing
	// (its "torn tail" may be an append in progress). The lock goes with
	// the descriptor.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, rep, fmt.Errorf("%w: %s is in use by another process (is another replicad running with this configuration?)", ErrHistory, path)
		}
		return nil, rep, fmt.Errorf("%w: lock %s: %v", ErrHistory, path, err)
	}
	if os.IsNotExist(statErr) {
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, rep, err
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Close()
		return nil, rep, fmt.Errorf("%w: %v", ErrHistory, err)
	}
	l, rep, res := loadLedger(data)
	size := int64(len(data))
	if res.TornTail {
		rep.Truncated = size - res.End
		if err := f.Truncate(res.End); err != nil {
			f.Close()
			return nil, rep, fmt.Errorf("%w: truncating torn tail: %v", ErrHistory, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, rep, fmt.Errorf("%w: %v", ErrHistory, err)
		}
		size = res.End
	}
	h := &historyStore{path: path}
	h.mu.f, h.mu.size, h.mu.ledger = f, size, l
	return h, rep, nil
}

// loadLedger folds a history file's bytes; it is the pure half of
// openHistory.
func loadLedger(data []byte) (*ledger, HistoryReport, journal.Result) {
	var rep HistoryReport
	res := journal.Parse(data)
	l := newLedger()
	for _, r := range res.Records {
		e, err := decodeEvent(r.Payload)
		if err != nil {
			rep.Undecodable++
			continue
		}
		l.apply(e)
	}
	l.interruptPending()
	rep.Records, rep.Damaged = len(res.Records), res.Damaged
	return l, rep, res
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrHistory, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%w: syncing %s: %v", ErrHistory, dir, err)
	}
	return nil
}

// append makes e durable, then folds it into the ledger. On a failed write
// the file is cut back so the next append starts on a frame boundary; the
// event is still folded so the running daemon reports what happened.
func (h *historyStore) append(e Event) error {
	payload, err := encodeEvent(e)
	if err != nil {
		return fmt.Errorf("%w: encoding event: %v", ErrHistory, err)
	}
	frame, err := journal.AppendFrame(nil, payload)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrHistory, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mu.ledger.apply(e)
	if h.mu.f == nil {
		return fmt.Errorf("%w: closed", ErrHistory)
	}
	n, err := h.mu.f.Write(frame)
	if err == nil {
		err = h.mu.f.Sync()
	}
	if err != nil {
		if n > 0 {
			_ = h.mu.f.Truncate(h.mu.size)
		}
		return fmt.Errorf("%w: appending to %s: %v", ErrHistory, h.path, err)
	}
	h.mu.size += int64(n)
	return nil
}

func (h *historyStore) query(q HistoryQuery) []Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.ledger.query(q)
}

func (h *historyStore) lastFenced(target string) (Operation, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.ledger.lastFenced(target)
}

func (h *historyStore) nextID() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.ledger.maxID + 1
}

func (h *historyStore) close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.f == nil {
		return nil
	}
	err := h.mu.f.Close()
	h.mu.f = nil
	return err
}
