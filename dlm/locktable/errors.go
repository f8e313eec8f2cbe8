package locktable

import "errors"

var (
	// ErrInvalid is returned by Request, Convert, Unlock and Cancel for a
	// mode, flag combination, name or LVB length the kernel DLM rejects with
	// -EINVAL (see ValidateLock and ValidateUnlock).
	ErrInvalid = errors.New("locktable: invalid argument")
	// ErrBusy is returned by Convert and Unlock when the lock is not in a
	// state that allows the operation (the kernel's -EBUSY): converting a
	// lock that is not granted, or unlocking one that is converting or
	// waiting without FORCEUNLOCK.
	ErrBusy = errors.New("locktable: lock busy")
	// ErrUnknownLock is returned by Convert and Unlock when the table holds no
	// lock with that id on that resource (the kernel's -ENOENT).
	ErrUnknownLock = errors.New("locktable: unknown lock")
	// ErrExists is returned by Request and AddRecovered when a lock with the
	// same id is already on the resource.
	ErrExists = errors.New("locktable: lock id already in use")
)
