package nbd

import "context"

// Backend is the storage behind an export. Ranges passed in are always
// inside [0, Size()).
type Backend interface {
	Size() int64
	ReadAt(ctx context.Context, p []byte, off int64) error
	WriteAt(ctx context.Context, p []byte, off int64, fua bool) error
	// WriteZeroes zeroes a range; with deallocate the space may be freed.
	// TRIM is served as WriteZeroes with deallocate, so trimmed ranges read
	// as zeroes on every replica.
	WriteZeroes(ctx context.Context, off, n int64, deallocate, fua bool) error
	Flush(ctx context.Context) error
}

// NoWaitReader is an optional Backend capability: reads that complete
// without waiting for a device (from the page cache), which the server
// answers on the connection's reader goroutine instead of starting one per
// request. Many small cached reads then cost no goroutine handoffs and
// share one socket write.
type NoWaitReader interface {
	// ReadAtNoWait is ReadAt if it can complete without waiting (true);
	// otherwise it returns false having done nothing visible, and the
	// server calls ReadAt from a request goroutine. Ranges are checked as
	// for ReadAt.
	ReadAtNoWait(p []byte, off int64) (bool, error)
}

// AsyncWriter is implemented by backends whose writes wait for more than
// the local disk (a replicated volume waits for its peers'
// acknowledgements). StartWriteAt does what must happen in order and
// returns a function that waits for the rest and gives WriteAt's result;
// it is called exactly once.
// The small writes one goroutine serves together (see transmit) then wait
// for their peers concurrently instead of one after the other.
type AsyncWriter interface {
	StartWriteAt(ctx context.Context, p []byte, off int64) (wait func() error)
}

// Export is what a client connects to.
type Export struct {
	Name        string
	Description string
	Backend     Backend
	ReadOnly    bool
}

// Exports resolves export names at handshake time.
type Exports interface {
	// Export returns the export with this name. The empty name, which
	// clients send when the user gave none, may resolve to a default.
	Export(name string) (Export, bool)
	// ExportNames lists the exports for NBD_OPT_LIST.
	ExportNames() []string
}
