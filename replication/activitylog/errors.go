package activitylog

import "errors"

// ErrFull is returned by Prepare when every slot holds an extent with writes
// in flight (or already leaving): the caller must wait for a Release.
var ErrFull = errors.New("activity log: every slot is busy")
