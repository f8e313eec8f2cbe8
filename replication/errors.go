package replication

import "errors"

var (
	// ErrNoMetadata is returned by Attach when the device has no replicad
	// metadata: run create-md first.
	ErrNoMetadata = errors.New("no metadata")
	// ErrMetadataExists is returned by CreateMetadata when the device already
	// has metadata (valid or damaged) and Force is not set.
	ErrMetadataExists = errors.New("metadata already exists")
	// ErrOutOfRange is returned by the I/O methods for a range outside the
	// volume. Writes past the end wrap ErrNoSpace instead.
	ErrOutOfRange = errors.New("range outside the volume")
	// ErrNoSpace is returned by WriteAt and WriteZeroes for a range that
	// extends past the end of the volume.
	ErrNoSpace = errors.New("write past the end of the volume")
	// ErrReadOnly is returned by the write methods of a volume attached
	// read-only.
	ErrReadOnly = errors.New("volume is read-only")
	// ErrDiskFailed is returned by every write and Flush after the backing
	// device failed a sync: data acknowledged earlier may be lost.
	ErrDiskFailed = errors.New("backing device failed")
	// ErrDetached is returned by the I/O methods after Close.
	ErrDetached = errors.New("volume detached")
)
