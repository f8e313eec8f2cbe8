package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/replicad/replicad/nbd"
	"github.com/replicad/replicad/replication"
	"github.com/replicad/replicad/replication/engine"
)

// blockIO is a volume's I/O path: the Volume itself when standalone, its
// Replicator when replicated.
type blockIO interface {
	Size() int64
	ReadAt(ctx context.Context, p []byte, off int64) error
	ReadAtNoWait(p []byte, off int64) (bool, error)
	WriteAt(ctx context.Context, p []byte, off int64, fua bool) error
	WriteZeroes(ctx context.Context, off, n int64, deallocate, fua bool) error
	Flush(ctx context.Context) error
}

var (
	_ blockIO = (*replication.Volume)(nil)
	_ blockIO = (*replication.Replicator)(nil)
)

// backend serves a volume to the NBD server: it maps replication's errors
// to the ones NBD clients see and records metrics.
type backend struct {
	io blockIO
	m  *volumeMetrics
}

var (
	_ nbd.Backend      = backend{}
	_ nbd.NoWaitReader = backend{}
)

func (b backend) Size() int64 { return b.io.Size() }

func (b backend) ReadAt(ctx context.Context, p []byte, off int64) error {
	start := time.Now()
	err := b.io.ReadAt(ctx, p, off)
	b.m.observe(opRead, int64(len(p)), start, err)
	return nbdError(err)
}

func (b backend) ReadAtNoWait(p []byte, off int64) (bool, error) {
	start := time.Now()
	done, err := b.io.ReadAtNoWait(p, off)
	if done || err != nil {
		b.m.observe(opRead, int64(len(p)), start, err)
	}
	return done, nbdError(err)
}

func (b backend) WriteAt(ctx context.Context, p []byte, off int64, fua bool) error {
	start := time.Now()
	err := b.io.WriteAt(ctx, p, off, fua)
	b.m.observe(opWrite, int64(len(p)), start, err)
	return nbdError(err)
}

// replicatedBackend is a replicated volume's backend: the small writes the
// NBD server serves together wait for the peers concurrently.
type replicatedBackend struct {
	backend
	rep *replication.Replicator
}

var _ nbd.AsyncWriter = replicatedBackend{}

func (b replicatedBackend) StartWriteAt(ctx context.Context, p []byte, off int64) func() error {
	start := time.Now()
	wait := b.rep.StartWriteAt(ctx, p, off)
	return func() error {
		err := wait()
		b.m.observe(opWrite, int64(len(p)), start, err)
		return nbdError(err)
	}
}

func (b backend) Flush(ctx context.Context) error {
	start := time.Now()
	err := b.io.Flush(ctx)
	b.m.observe(opFlush, 0, start, err)
	return nbdError(err)
}

func (b backend) WriteZeroes(ctx context.Context, off, n int64, deallocate, fua bool) error {
	start := time.Now()
	err := b.io.WriteZeroes(ctx, off, n, deallocate, fua)
	b.m.observe(opZero, n, start, err)
	return nbdError(err)
}

// nbdError classifies a volume error for the NBD reply.
func nbdError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, replication.ErrReadOnly), errors.Is(err, engine.ErrNotPrimary):
		return fmt.Errorf("%w: %v", nbd.ErrPermission, err)
	case errors.Is(err, replication.ErrNoSpace):
		return fmt.Errorf("%w: %v", nbd.ErrNoSpace, err)
	case errors.Is(err, replication.ErrOutOfRange):
		return fmt.Errorf("%w: %v", nbd.ErrInvalid, err)
	case errors.Is(err, replication.ErrDetached):
		return fmt.Errorf("%w: %v", nbd.ErrShutdown, err)
	}
	return err
}
