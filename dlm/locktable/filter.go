package locktable

// CallbackFilter is the holder-side callback rule of fs/dlm/ast.c
// (dlm_enqueue_lkb_callback): a lock's completions always go through, and a
// blocking callback is dropped when it is stale (the mode it asks to yield
// for is compatible with the mode the lock was last completed in) or
// repeated (the previous callback queued for the lock was a BAST for the
// same mode, or for a stronger mode above PR). The zero value is a lock with
// no callbacks yet.
type CallbackFilter struct {
	haveCast bool
	lastCast Mode
	lastBast bool // the last callback queued was a BAST
	lastMode Mode // its mode
}

// Cast records a completion that leaves the lock granted in mode (IV if the
// lock holds nothing, as after a failed request).
func (f *CallbackFilter) Cast(mode Mode) {
	f.haveCast = true
	f.lastCast = mode
	f.lastBast = false
}

// Bast reports whether a BAST for mode should be delivered, and records it
// if so.
func (f *CallbackFilter) Bast(mode Mode) bool {
	if f.haveCast && Compatible(mode, f.lastCast) {
		return false
	}
	if f.lastBast && (f.lastMode == mode || (f.lastMode > mode && f.lastMode > PR)) {
		return false
	}
	f.lastBast = true
	f.lastMode = mode
	return true
}
