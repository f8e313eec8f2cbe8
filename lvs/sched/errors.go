package sched

import "errors"

// ErrUnknownScheduler is returned by New for a name it does not implement.
var ErrUnknownScheduler = errors.New("unknown scheduler")
