package fence

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/replicad/replicad/fence/plan"
)

// History events, one journal record each. An operation is a start event,
// any number of join events (requests merged into it) and a finish event;
// a manual confirmation is a single confirm event.
const (
	EventStart   = "start"
	EventJoin    = "join"
	EventFinish  = "finish"
	EventConfirm = "confirm"
)

// OpState is where an operation stands.
type OpState string

// Operation states.
const (
	// StatePending: running now.
	StatePending OpState = "pending"
	// StateSuccess: a level succeeded (for off/reboot, verified off).
	StateSuccess OpState = "success"
	// StateFailed: every level failed, or the Fencer stopped it.
	StateFailed OpState = "failed"
	// StateConfirmed: an operator confirmed the node down by hand.
	StateConfirmed OpState = "confirmed"
	// StateInterrupted: started by an earlier run of the daemon that
	// stopped before recording its end; the outcome is unknown.
	StateInterrupted OpState = "interrupted"
)

// Fenced reports whether the state means the node went down.
func (s OpState) Fenced() bool { return s == StateSuccess || s == StateConfirmed }

// Requester is who asked for an operation and why.
type Requester struct {
	// Origin names the asker, e.g. "node-a/replication r0",
	// "node-a/crm", "repctl root@node-b".
	Origin string    `json:"origin"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Event is one history record.
type Event struct {
	Kind      string     `json:"kind"`
	Op        uint64     `json:"op"`
	Time      time.Time  `json:"time"`
	Target    string     `json:"target,omitempty"`
	Action    Action     `json:"action,omitempty"`
	Requester *Requester `json:"requester,omitempty"`
	// Finish and confirm carry the result.
	State    OpState     `json:"state,omitempty"`
	Level    int         `json:"level,omitempty"`
	Error    string      `json:"error,omitempty"`
	Warnings []string    `json:"warnings,omitempty"`
	Steps    []plan.Step `json:"steps,omitempty"`
}

// Operation is one fence operation as the history shows it.
type Operation struct {
	ID         uint64      `json:"id"`
	Target     string      `json:"target"`
	Action     Action      `json:"action"`
	State      OpState     `json:"state"`
	Requesters []Requester `json:"requesters"`
	Started    time.Time   `json:"started"`
	Completed  time.Time   `json:"completed,omitzero"`
	// Level is the 1-based level that succeeded.
	Level int `json:"level,omitempty"`
	// Devices lists the devices the operation called, in order.
	Devices  []string    `json:"devices,omitempty"`
	Error    string      `json:"error,omitempty"`
	Warnings []string    `json:"warnings,omitempty"`
	Steps    []plan.Step `json:"steps,omitempty"`
}

// encodeEvent is the record payload of e.
func encodeEvent(e Event) ([]byte, error) { return json.Marshal(e) }

// decodeEvent parses a record payload and checks what folding relies on.
func decodeEvent(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return e, err
	}
	switch e.Kind {
	case EventStart, EventConfirm:
		if e.Target == "" || e.Requester == nil {
			return e, fmt.Errorf("%s event of op %d without target or requester", e.Kind, e.Op)
		}
	case EventJoin:
		if e.Requester == nil {
			return e, fmt.Errorf("join event of op %d without requester", e.Op)
		}
	case EventFinish:
	default:
		return e, fmt.Errorf("unknown event kind %q", e.Kind)
	}
	return e, nil
}

// ledger folds events into operations. It is pure; historyStore feeds it.
type ledger struct {
	ops   map[uint64]*Operation
	maxID uint64
}

func newLedger() *ledger { return &ledger{ops: map[uint64]*Operation{}} }

// apply folds one event. Events for unknown ops (their start lost to
// damage) still create an entry so nothing recorded is hidden.
func (l *ledger) apply(e Event) {
	if e.Op > l.maxID {
		l.maxID = e.Op
	}
	op := l.ops[e.Op]
	if op == nil {
		op = &Operation{ID: e.Op, Target: e.Target, Action: e.Action, State: StatePending, Started: e.Time}
		l.ops[e.Op] = op
	}
	if e.Requester != nil {
		op.Requesters = append(op.Requesters, *e.Requester)
	}
	switch e.Kind {
	case EventStart:
		op.Target, op.Action, op.Started = e.Target, e.Action, e.Time
	case EventConfirm:
		op.Target, op.Action, op.Started = e.Target, e.Action, e.Time
		op.State, op.Completed = StateConfirmed, e.Time
	case EventFinish:
		op.State, op.Completed = e.State, e.Time
		op.Level, op.Error, op.Warnings, op.Steps = e.Level, e.Error, e.Warnings, e.Steps
		op.Devices = nil
		for _, s := range e.Steps {
			if s.Device != "" && !slices.Contains(op.Devices, s.Device) {
				op.Devices = append(op.Devices, s.Device)
			}
		}
	}
}

// interruptPending marks every pending operation interrupted: at open, no
// operation of this process is running yet.
func (l *ledger) interruptPending() {
	for _, op := range l.ops {
		if op.State == StatePending {
			op.State = StateInterrupted
		}
	}
}

// HistoryQuery selects operations; zero fields select everything.
type HistoryQuery struct {
	Target string
	Since  time.Time
	// Limit keeps the newest Limit operations (0: all).
	Limit int
}

func cloneOp(op *Operation) Operation {
	c := *op
	c.Requesters = slices.Clone(op.Requesters)
	c.Devices = slices.Clone(op.Devices)
	c.Warnings = slices.Clone(op.Warnings)
	c.Steps = slices.Clone(op.Steps)
	return c
}

// query returns matching operations, newest first.
func (l *ledger) query(q HistoryQuery) []Operation {
	ids := make([]uint64, 0, len(l.ops))
	for id := range l.ops {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] > ids[j] })
	var out []Operation
	for _, id := range ids {
		op := l.ops[id]
		if q.Target != "" && op.Target != q.Target {
			continue
		}
		if !q.Since.IsZero() && op.Started.Before(q.Since) {
			continue
		}
		out = append(out, cloneOp(op))
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out
}

// lastFenced is the newest operation that took target down (success of off
// or reboot, or a confirmation), if any.
func (l *ledger) lastFenced(target string) (Operation, bool) {
	var best *Operation
	for _, op := range l.ops {
		if op.Target != target || !op.State.Fenced() || op.Action == ActionOn {
			continue
		}
		if best == nil || op.Completed.After(best.Completed) || (op.Completed.Equal(best.Completed) && op.ID > best.ID) {
			best = op
		}
	}
	if best == nil {
		return Operation{}, false
	}
	return cloneOp(best), true
}
