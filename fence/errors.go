package fence

import "errors"

// ErrInvalidConfig wraps every problem Config.Validate and Decode report.
var ErrInvalidConfig = errors.New("invalid fence configuration")

// ErrUnknownTarget is returned by Fencer.Fence for a node no device can fence.
var ErrUnknownTarget = errors.New("no fence device can fence this node")

// ErrUnknownDevice is returned by Fencer.Test, Fencer.List and
// Fencer.Metadata for a device name that is not configured.
var ErrUnknownDevice = errors.New("no such fence device")

// ErrBadRequest is returned by Fencer.Fence, Fencer.Confirm and FencePeer
// for a request missing its target, reason or origin, or with an action
// other than off, on or reboot.
var ErrBadRequest = errors.New("invalid fence request")

// ErrFenceFailed is wrapped by Fencer.Fence's error when every level failed;
// the same error also wraps the agents' errors (ErrTimeout, ErrLoginDenied,
// ErrAgentFailed, plan.ErrNotOff).
var ErrFenceFailed = errors.New("fencing failed")

// ErrTimeout is wrapped by agent call errors when the call did not finish
// within the device timeout; the agent process group was killed or the HTTP
// request abandoned.
var ErrTimeout = errors.New("fence agent timed out")

// ErrLoginDenied is wrapped by agent call errors when the device refused the
// credentials (fence-agents exit code 3, HTTP 401/403 from Redfish).
var ErrLoginDenied = errors.New("fence device refused the login")

// ErrAgentFailed is wrapped by agent call errors for every other failure
// (non-zero exit code, unexpected status, HTTP or protocol errors).
var ErrAgentFailed = errors.New("fence agent failed")

// ErrUnsupported is returned for an action the agent does not implement
// (from its metadata).
var ErrUnsupported = errors.New("fence agent does not support this action")

// ErrClosed is returned by every Fencer method after Close.
var ErrClosed = errors.New("fencer is closed")

// ErrStillRunning is returned by Fencer.Fence when ctx ends before the
// operation does; the operation goes on and its result lands in the history.
var ErrStillRunning = errors.New("fence operation still running")

// ErrHistory is wrapped by OpenHistory and History.Append I/O errors.
var ErrHistory = errors.New("fence history")
