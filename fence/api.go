package fence

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// This file holds the JSON shapes the daemon's control API uses for
// `repctl fence` (docs/fencing.md lists the endpoints), so that the wiring
// is a matter of decoding a request, calling the Fencer and encoding the
// answer.

// Duration is a time.Duration that JSON-encodes as a Go duration string
// ("1m30s").
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"20s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// NodeRequest is the body of POST /v1/fence/nodes/{node}/fence.
type NodeRequest struct {
	Action Action `json:"action"`
	Reason string `json:"reason"`
	// TargetHoldsPrimary applies the priority delay.
	TargetHoldsPrimary bool `json:"target_holds_primary,omitempty"`
}

// ConfirmRequest is the body of POST /v1/fence/nodes/{node}/confirm.
type ConfirmRequest struct {
	Reason string `json:"reason"`
}

// DevicesResponse answers GET /v1/fence/devices.
type DevicesResponse struct {
	Devices []DeviceInfo `json:"devices"`
	Targets []string     `json:"targets"`
}

// HistoryResponse answers GET /v1/fence/history.
type HistoryResponse struct {
	Operations []Operation `json:"operations"`
}

// APIError is the error body of every fence endpoint.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Result is set for fence_failed: what the operation did.
	Result *Result `json:"result,omitempty"`
}

// Error codes of APIError, from ErrorCode.
const (
	CodeBadRequest    = "bad_request"
	CodeUnknownTarget = "unknown_target"
	CodeUnknownDevice = "unknown_device"
	CodeUnsupported   = "unsupported"
	CodeFenceFailed   = "fence_failed"
	CodeStillRunning  = "still_running"
	CodeClosed        = "closed"
	CodeHistory       = "history"
	CodeInternal      = "internal"
)

// ErrorCode classifies an error returned by the Fencer for the control API.
func ErrorCode(err error) string {
	switch {
	case errors.Is(err, ErrBadRequest):
		return CodeBadRequest
	case errors.Is(err, ErrUnknownTarget):
		return CodeUnknownTarget
	case errors.Is(err, ErrUnknownDevice):
		return CodeUnknownDevice
	case errors.Is(err, ErrUnsupported):
		return CodeUnsupported
	case errors.Is(err, ErrFenceFailed):
		return CodeFenceFailed
	case errors.Is(err, ErrStillRunning):
		return CodeStillRunning
	case errors.Is(err, ErrClosed):
		return CodeClosed
	case errors.Is(err, ErrHistory):
		return CodeHistory
	}
	return CodeInternal
}
