package dlm

import (
	"errors"

	"github.com/replicad/replicad/dlm/engine"
	"github.com/replicad/replicad/dlm/locktable"
)

var (
	// ErrWouldBlock is returned by Lock and Convert when a NOQUEUE request
	// could not be granted at once (the kernel's -EAGAIN).
	ErrWouldBlock = errors.New("dlm: lock would block")
	// ErrDeadlock is returned by Convert for a conversion deadlock (the
	// kernel's -EDEADLK); the lock keeps its granted mode.
	ErrDeadlock = errors.New("dlm: conversion deadlock")
	// ErrCancelled is returned by Lock and Convert when the request was
	// cancelled (Cancel, or the context ending) before it was granted.
	ErrCancelled = errors.New("dlm: request cancelled")
	// ErrUnlocked is returned by Lock and Convert when a FORCEUNLOCK
	// released the lock while the request was pending.
	ErrUnlocked = errors.New("dlm: lock was unlocked")
	// ErrInvalid is returned for a malformed request: a bad mode, flag
	// combination, name or LVB length (the kernel's -EINVAL); and by
	// RecordFenced for this node itself.
	ErrInvalid = locktable.ErrInvalid
	// ErrBusy is returned by Convert, Unlock and Cancel while another
	// operation on the lock is pending (the kernel's -EBUSY), and by Leave
	// when the release-force level forbids leaving with locks.
	ErrBusy = engine.ErrBusy
	// ErrUnknownLock is returned for a lock that no longer exists.
	ErrUnknownLock = engine.ErrUnknownLock
	// ErrLeft is returned by operations on a lockspace that was left, or a
	// node that was closed.
	ErrLeft = engine.ErrLeft
	// ErrNotJoined is returned by Node.Lockspace and the local protocol for
	// a lockspace this node has not joined.
	ErrNotJoined = errors.New("dlm: lockspace not joined")
	// ErrJoined is returned by JoinLockspace for a lockspace already joined
	// with a different LVB length.
	ErrJoined = errors.New("dlm: lockspace already joined with other options")
	// ErrNoOrphan is returned by Lock with ORPHAN when no orphaned lock on
	// that resource exists (the kernel's -ENOENT).
	ErrNoOrphan = errors.New("dlm: no orphan lock to adopt")
	// ErrOrphanMode is returned by Lock with ORPHAN when the orphan on that
	// resource is held in another mode (the kernel's -EAGAIN).
	ErrOrphanMode = errors.New("dlm: orphan lock held in another mode")
	// ErrNotFailed is returned by Static.ConfirmFenced for a node with no
	// failure to confirm, and by Node.ConfirmFenced when neither the
	// membership nor the ledger learned from peers knows one.
	ErrNotFailed = errors.New("dlm: node has no unconfirmed failure")
	// ErrUnknownNode is returned by ConfirmFenced and RecordFenced for a
	// node that is not configured.
	ErrUnknownNode = errors.New("dlm: unknown node")
	// ErrClosed is returned by operations on a closed Node.
	ErrClosed = errors.New("dlm: node closed")
)
