package disk

import "errors"

var (
	// ErrOutOfRange is returned by every implementation's ReadAt, WriteAt and
	// Zero when the range does not lie inside the device.
	ErrOutOfRange = errors.New("disk: range outside the device")
	// ErrClosed is returned by any call on a closed Mem or Crash device.
	ErrClosed = errors.New("disk: device closed")
	// ErrInjected is the default error Faulty returns when a rule fires.
	ErrInjected = errors.New("disk: injected I/O error")
)
