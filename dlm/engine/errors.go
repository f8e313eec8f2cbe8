package engine

import "errors"

var (
	// ErrUnknownLock is returned by Convert, Unlock and Cancel for a lock id
	// this engine does not hold.
	ErrUnknownLock = errors.New("dlm: unknown lock id")
	// ErrBusy is returned by Convert and Unlock when another operation on
	// the lock is still pending (the kernel's -EBUSY), and by Cancel when a
	// cancel or unlock is already pending.
	ErrBusy = errors.New("dlm: lock has an operation in progress")
	// ErrLeft is returned by Lock, Convert, Unlock and Cancel after Leave.
	ErrLeft = errors.New("dlm: lockspace left")
	// ErrNotFailed is returned by ConfirmFenced for a node that has no
	// failure awaiting fence confirmation.
	ErrNotFailed = errors.New("dlm: node has no unconfirmed failure")
)
