package health

import "errors"

var (
	// ErrTimeout is the failure Tick records for a check whose result did
	// not arrive within its timeout.
	ErrTimeout = errors.New("health check timed out")

	// ErrUnknownTarget is returned by Tracker.Result and Tracker.Status for
	// a target that was never added or has been removed.
	ErrUnknownTarget = errors.New("unknown health-check target")
)
