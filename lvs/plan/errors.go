package plan

import "errors"

// ErrDuplicate is returned by Plan when desired contains the same service
// key, or the same real server within a service, twice.
var ErrDuplicate = errors.New("duplicate in desired state")
