package plan

import "errors"

// ErrNotOff is wrapped by attempt errors when status never reported off
// within the verification timeout (Run).
var ErrNotOff = errors.New("power status did not report off")

// ErrAborted must be wrapped by an Env method's error when the operation is
// being stopped (shutdown, manual confirmation); Run then returns at once
// with Outcome.Aborted set.
var ErrAborted = errors.New("fence operation aborted")

// ErrBadSpec is returned by Spec.Validate.
var ErrBadSpec = errors.New("invalid fence plan")
