package replication

import (
	"context"
	"sync"
)

// syncer coalesces concurrent Flush calls into as few device syncs as
// correctness allows: a caller is satisfied only by a sync that started
// after it arrived, so one sync serves everyone who arrived while the
// previous one ran. A failed sync poisons the syncer for good.
type syncer struct {
	sync func() error
	mu   struct {
		sync.Mutex
		started uint64 // syncs started
		done    uint64 // syncs finished
		running bool
		wake    chan struct{} // closed when a sync finishes
		err     error         // sticky
	}
}

func newSyncer(f func() error) *syncer {
	s := &syncer{sync: f}
	s.mu.wake = make(chan struct{})
	return s
}

// flush returns once a sync that began after the call has completed.
func (s *syncer) flush(ctx context.Context) error {
	s.mu.Lock()
	// The sync running now may have started before our writes returned;
	// we need the next one.
	target := s.mu.started + 1
	for {
		if s.mu.err != nil {
			err := s.mu.err
			s.mu.Unlock()
			return err
		}
		if s.mu.done >= target {
			s.mu.Unlock()
			return nil
		}
		if !s.mu.running {
			s.mu.running = true
			s.mu.started++
			s.mu.Unlock()
			err := s.sync()
			s.mu.Lock()
			s.mu.running = false
			s.mu.done++
			if err != nil && s.mu.err == nil {
				s.mu.err = err
			}
			close(s.mu.wake)
			s.mu.wake = make(chan struct{})
			continue
		}
		wake := s.mu.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
	}
}
