package client

import (
	"errors"

	"github.com/replicad/replicad/dlm/localproto"
)

var (
	// ErrWouldBlock: a NOQUEUE request could not be granted at once.
	ErrWouldBlock = errors.New("dlm client: lock would block")
	// ErrDeadlock: a conversion deadlock; the lock keeps its mode.
	ErrDeadlock = errors.New("dlm client: conversion deadlock")
	// ErrCancelled: the request was cancelled before it was granted.
	ErrCancelled = errors.New("dlm client: request cancelled")
	// ErrUnlocked: a force-unlock ended the lock while a request waited.
	ErrUnlocked = errors.New("dlm client: lock was unlocked")
	// ErrInvalid: the server refused a malformed request.
	ErrInvalid = errors.New("dlm client: invalid request")
	// ErrBusy: another operation on the lock is pending, or a leave was
	// refused at this release-force level.
	ErrBusy = errors.New("dlm client: busy")
	// ErrUnknownLock: the lock does not exist (any more).
	ErrUnknownLock = errors.New("dlm client: unknown lock")
	// ErrNotJoined: the lockspace is not joined on this node (Join it).
	ErrNotJoined = errors.New("dlm client: lockspace not joined")
	// ErrNoOrphan: there is no orphaned lock on that resource to adopt.
	ErrNoOrphan = errors.New("dlm client: no orphan to adopt")
	// ErrOrphanMode: the orphan on that resource is held in another mode.
	ErrOrphanMode = errors.New("dlm client: orphan held in another mode")
	// ErrLeft: the lockspace was left or the node is shutting down.
	ErrLeft = errors.New("dlm client: lockspace left")
	// ErrJoined: the lockspace is joined with other options.
	ErrJoined = errors.New("dlm client: lockspace joined with other options")
	// ErrServer: the server failed.
	ErrServer = errors.New("dlm client: server error")
	// ErrClosed: the connection is closed.
	ErrClosed = errors.New("dlm client: connection closed")
)

var codeErrs = map[localproto.Code]error{
	localproto.CodeInvalid: ErrInvalid, localproto.CodeBusy: ErrBusy, localproto.CodeUnknownLock: ErrUnknownLock,
	localproto.CodeNotJoined: ErrNotJoined, localproto.CodeNoOrphan: ErrNoOrphan, localproto.CodeOrphanMode: ErrOrphanMode,
	localproto.CodeLeft: ErrLeft, localproto.CodeJoined: ErrJoined, localproto.CodeInternal: ErrServer,
}
