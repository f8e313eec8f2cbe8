package health

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// State is a real server's health.
type State uint8

// States.
const (
	Up State = iota + 1
	Down
)

func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "unknown"
}

// Config is the timing and hysteresis of one target's checks.
type Config struct {
	Interval time.Duration // between check starts
	Timeout  time.Duration // per check; must be <= Interval
	Rise     int           // consecutive successes to go Down -> Up
	Fall     int           // consecutive failures to go Up -> Down
	// InitiallyDown starts the target Down (keepalived's alpha): it gets no
	// traffic until Rise checks have passed. Otherwise it starts Up.
	InitiallyDown bool
}

// Validate reports configuration a Tracker cannot run.
func (c Config) Validate() error {
	var p []string
	if c.Interval <= 0 {
		p = append(p, fmt.Sprintf("interval %s must be > 0", c.Interval))
	}
	if c.Timeout <= 0 || c.Timeout > c.Interval {
		p = append(p, fmt.Sprintf("timeout %s must be in (0, interval %s]", c.Timeout, c.Interval))
	}
	if c.Rise < 1 {
		p = append(p, fmt.Sprintf("rise %d must be >= 1", c.Rise))
	}
	if c.Fall < 1 {
		p = append(p, fmt.Sprintf("fall %d must be >= 1", c.Fall))
	}
	if len(p) > 0 {
		return fmt.Errorf("health config: %s", strings.Join(p, "; "))
	}
	return nil
}

// Start is a check the caller must run now and report with Result.
type Start struct {
	ID       string
	Seq      uint64 // pass back to Result
	Deadline time.Time
}

// Transition is a change of a target's state.
type Transition struct {
	ID       string
	From, To State
	At       time.Time
	Reason   string // the last check's error, or "" for a rise
}

// Status is a snapshot of one target.
type Status struct {
	State       State
	Successes   int // consecutive, counting towards Rise while Down
	Failures    int // consecutive, counting towards Fall while Up
	Checks      uint64
	LastCheck   time.Time // when the last result (or timeout) was recorded
	LastError   string
	LastChanged time.Time
	InFlight    bool
}

type target struct {
	cfg      Config
	st       Status
	nextDue  time.Time
	seq      uint64
	deadline time.Time
}

// Tracker schedules checks and runs the rise/fall state machine for a set of
// targets. It is not safe for concurrent use; the caller serialises.
type Tracker struct {
	targets map[string]*target
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return &Tracker{targets: map[string]*target{}} }

// Add starts tracking a target; its first check is due at now. Adding an
// existing id replaces its config and keeps its state.
func (t *Tracker) Add(id string, cfg Config, now time.Time) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	if tg, ok := t.targets[id]; ok {
		tg.cfg = cfg
		return nil
	}
	st := Status{State: Up, LastChanged: now}
	if cfg.InitiallyDown {
		st.State = Down
	}
	t.targets[id] = &target{cfg: cfg, st: st, nextDue: now}
	return nil
}

// Remove stops tracking a target; a late Result for it is ignored.
func (t *Tracker) Remove(id string) { delete(t.targets, id) }

// IDs returns the tracked ids, sorted.
func (t *Tracker) IDs() []string {
	ids := make([]string, 0, len(t.targets))
	for id := range t.targets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Tick records a timeout for every check past its deadline and starts every
// check that is due. Both lists are sorted by id.
func (t *Tracker) Tick(now time.Time) (starts []Start, transitions []Transition) {
	for _, id := range t.IDs() {
		tg := t.targets[id]
		if tg.st.InFlight && !now.Before(tg.deadline) {
			if tr, ok := t.record(id, tg, ErrTimeout, now); ok {
				transitions = append(transitions, tr)
			}
		}
		if !tg.st.InFlight && !now.Before(tg.nextDue) {
			tg.seq++
			tg.st.InFlight = true
			tg.deadline = now.Add(tg.cfg.Timeout)
			// Fixed rate: the next check is one interval after this start,
			// or one interval from now if the caller slept past it.
			tg.nextDue = tg.nextDue.Add(tg.cfg.Interval)
			if tg.nextDue.Before(now) {
				tg.nextDue = now.Add(tg.cfg.Interval)
			}
			starts = append(starts, Start{ID: id, Seq: tg.seq, Deadline: tg.deadline})
		}
	}
	return starts, transitions
}

// Result records the outcome of a started check (err == nil: healthy). A
// result for an older check, or one that already timed out, is ignored.
func (t *Tracker) Result(id string, seq uint64, err error, now time.Time) (Transition, bool, error) {
	tg, ok := t.targets[id]
	if !ok {
		return Transition{}, false, fmt.Errorf("%w: %s", ErrUnknownTarget, id)
	}
	if !tg.st.InFlight || seq != tg.seq {
		return Transition{}, false, nil
	}
	tr, changed := t.record(id, tg, err, now)
	return tr, changed, nil
}

func (t *Tracker) record(id string, tg *target, err error, now time.Time) (Transition, bool) {
	tg.st.InFlight = false
	tg.st.Checks++
	tg.st.LastCheck = now
	tg.st.LastError = ""
	if err != nil {
		tg.st.LastError = err.Error()
	}
	from := tg.st.State
	switch {
	case err == nil && from == Up:
		tg.st.Failures = 0
	case err == nil: // Down
		tg.st.Successes++
		if tg.st.Successes >= tg.cfg.Rise {
			tg.st.State, tg.st.Successes = Up, 0
		}
	case from == Up:
		tg.st.Failures++
		if tg.st.Failures >= tg.cfg.Fall {
			tg.st.State, tg.st.Failures = Down, 0
		}
	default: // failure while Down
		tg.st.Successes = 0
	}
	if tg.st.State == from {
		return Transition{}, false
	}
	tg.st.LastChanged = now
	return Transition{ID: id, From: from, To: tg.st.State, At: now, Reason: tg.st.LastError}, true
}

// NextWake returns the earliest time Tick has something to do, or false
// when nothing is tracked.
func (t *Tracker) NextWake() (time.Time, bool) {
	var when time.Time
	found := false
	for _, tg := range t.targets {
		w := tg.nextDue
		if tg.st.InFlight {
			w = tg.deadline
		}
		if !found || w.Before(when) {
			when, found = w, true
		}
	}
	return when, found
}

// Status returns a target's status.
func (t *Tracker) Status(id string) (Status, error) {
	tg, ok := t.targets[id]
	if !ok {
		return Status{}, fmt.Errorf("%w: %s", ErrUnknownTarget, id)
	}
	return tg.st, nil
}
