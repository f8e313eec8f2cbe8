package disk

import "sync"

// Op is a kind of device call, as a bit so rules can match several.
type Op uint8

// The operations a Rule can match.
const (
	OpRead Op = 1 << iota
	OpWrite
	OpSync
	OpZero
	OpAny = OpRead | OpWrite | OpSync | OpZero
)

// Rule says when Faulty fails a call.
type Rule struct {
	// Ops selects the calls the rule applies to. WriteAtSync counts as both a
	// write and a sync.
	Ops Op
	// Off and Len restrict the rule to calls overlapping [Off, Off+Len);
	// Len 0 matches every offset. Sync has no range and matches any rule
	// that includes OpSync.
	Off, Len int64
	// After lets this many matching calls through before the rule fires.
	After int
	// Times is how often the rule fires once armed; 0 means forever.
	Times int
	// Err is returned when the rule fires (ErrInjected if nil).
	Err error
}

// Faulty wraps a Device and fails calls that match its rules. A failed write
// changes nothing on the inner device.
type Faulty struct {
	inner Device
	mu    struct {
		sync.Mutex
		rules []*ruleState
	}
}

type ruleState struct {
	Rule
	seen, fired int
}

// NewFaulty wraps inner.
func NewFaulty(inner Device) *Faulty { return &Faulty{inner: inner} }

// Inject adds a rule.
func (f *Faulty) Inject(r Rule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.rules = append(f.mu.rules, &ruleState{Rule: r})
}

// Clear removes every rule.
func (f *Faulty) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.rules = nil
}

// Inner returns the wrapped device.
func (f *Faulty) Inner() Device { return f.inner }

func (f *Faulty) check(op Op, off, n int64, ranged bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.mu.rules {
		if r.Ops&op == 0 {
			continue
		}
		if ranged && r.Len > 0 && (off+n <= r.Off || off >= r.Off+r.Len) {
			continue
		}
		r.seen++
		if r.seen <= r.After {
			continue
		}
		if r.Times > 0 && r.fired >= r.Times {
			continue
		}
		r.fired++
		if r.Err != nil {
			return r.Err
		}
		return ErrInjected
	}
	return nil
}

// Size returns the inner size.
func (f *Faulty) Size() int64 { return f.inner.Size() }

// ReadAt fails or reads through.
func (f *Faulty) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check(OpRead, off, int64(len(p)), true); err != nil {
		return 0, err
	}
	return f.inner.ReadAt(p, off)
}

// WriteAt fails or writes through.
func (f *Faulty) WriteAt(p []byte, off int64) (int, error) {
	if err := f.check(OpWrite, off, int64(len(p)), true); err != nil {
		return 0, err
	}
	return f.inner.WriteAt(p, off)
}

// WriteAtSync fails or writes durably through.
func (f *Faulty) WriteAtSync(p []byte, off int64) (int, error) {
	if err := f.check(OpWrite|OpSync, off, int64(len(p)), true); err != nil {
		return 0, err
	}
	return len(p), WriteSync(f.inner, p, off)
}

// Sync fails or syncs through.
func (f *Faulty) Sync() error {
	if err := f.check(OpSync, 0, 0, false); err != nil {
		return err
	}
	return f.inner.Sync()
}

// Zero fails or zeroes through.
func (f *Faulty) Zero(off, n int64, deallocate bool) error {
	if err := f.check(OpZero, off, n, true); err != nil {
		return err
	}
	return ZeroRange(f.inner, off, n, deallocate)
}

// Close closes the inner device.
func (f *Faulty) Close() error { return f.inner.Close() }
