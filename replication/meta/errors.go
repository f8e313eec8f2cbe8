package meta

import "errors"

var (
	// ErrNoMetadata is returned by ReadSuperblock when neither superblock copy
	// carries the magic number: the device has never been initialised.
	ErrNoMetadata = errors.New("no replicad metadata")
	// ErrCorrupt is returned by ReadSuperblock when a copy carries the magic
	// but no copy passes its checksum, and by the Unmarshal functions for
	// blocks that fail their checks.
	ErrCorrupt = errors.New("metadata checksum mismatch")
	// ErrVersion is returned by UnmarshalSuperblock for a format version this
	// build does not know.
	ErrVersion = errors.New("unsupported metadata version")
	// ErrGeometry is returned by Geometry.Validate and the layout functions
	// for sizes that do not fit.
	ErrGeometry = errors.New("invalid metadata geometry")
)
