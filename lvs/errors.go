package lvs

import "errors"

var (
	// ErrInvalidConfig is wrapped by Config.Validate, New and the
	// Manager's runtime edit calls when a configuration is rejected. The
	// message lists every problem with its field name.
	ErrInvalidConfig = errors.New("invalid lvs configuration")

	// ErrBackendUnavailable is returned by ChooseBackend and New when the
	// configured backend cannot run on this kernel (ipvs without ip_vs).
	ErrBackendUnavailable = errors.New("load-balancing backend unavailable")

	// ErrNotFound is returned by the Manager's update and delete calls for
	// a service or real server that is not configured.
	ErrNotFound = errors.New("not found")

	// ErrExists is returned by Manager.AddService and AddRealServer for a
	// name or address that is already configured.
	ErrExists = errors.New("already exists")

	// ErrUnhealthy is wrapped by every health check's failure.
	ErrUnhealthy = errors.New("real server unhealthy")

	// ErrNoSuchInterface is returned by NewVIP, VIP.Acquire and
	// VIP.Check when the configured interface does not exist.
	ErrNoSuchInterface = errors.New("no such interface")

	// ErrClosed is returned by Manager calls after Close.
	ErrClosed = errors.New("lvs manager closed")
)
