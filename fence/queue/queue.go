package queue

import (
	"fmt"
	"slices"
)

// Op is one fence operation: an action on a target that one or more
// requests wait for.
type Op struct {
	ID       uint64
	Target   string
	Action   string
	Requests []uint64 // the request that created the op comes first
}

// Decision says what Submit did with a request.
type Decision int

const (
	// Started: a new operation that the caller must run now.
	Started Decision = iota
	// Merged: the request joined an operation already running or waiting.
	Merged
	// Queued: a new operation waiting behind others for the same target.
	Queued
)

func (d Decision) String() string {
	switch d {
	case Started:
		return "started"
	case Merged:
		return "merged"
	case Queued:
		return "queued"
	}
	return fmt.Sprintf("Decision(%d)", int(d))
}

type line struct {
	ops []*Op // ops[0] runs; the rest wait in order
}

// Queue holds the operations of every target.
type Queue struct {
	next    uint64
	targets map[string]*line
	byID    map[uint64]string // op id → target
}

// New returns an empty queue whose first operation gets id firstID, so ids
// stay unique across restarts when the caller resumes from its history.
func New(firstID uint64) *Queue {
	return &Queue{next: firstID, targets: map[string]*line{}, byID: map[uint64]string{}}
}

func clone(o *Op) Op {
	c := *o
	c.Requests = slices.Clone(o.Requests)
	return c
}

// Submit adds request req for action on target.
func (q *Queue) Submit(target, action string, req uint64) (Op, Decision) {
	l := q.targets[target]
	if l == nil {
		l = &line{}
		q.targets[target] = l
	}
	if n := len(l.ops); n > 0 && l.ops[n-1].Action == action {
		last := l.ops[n-1]
		last.Requests = append(last.Requests, req)
		return clone(last), Merged
	}
	op := &Op{ID: q.next, Target: target, Action: action, Requests: []uint64{req}}
	q.next++
	q.byID[op.ID] = target
	l.ops = append(l.ops, op)
	if len(l.ops) == 1 {
		return clone(op), Started
	}
	return clone(op), Queued
}

// Finish removes the running operation id and returns the operation that
// now runs for its target, which the caller must start. It panics if id is
// not running: finishing an operation twice is a broken invariant.
func (q *Queue) Finish(id uint64) (next Op, ok bool) {
	target, known := q.byID[id]
	l := q.targets[target]
	if !known || l == nil || len(l.ops) == 0 || l.ops[0].ID != id {
		panic(fmt.Sprintf("queue: Finish(%d) for an operation that is not running", id))
	}
	delete(q.byID, id)
	l.ops = l.ops[1:]
	if len(l.ops) == 0 {
		delete(q.targets, target)
		return Op{}, false
	}
	return clone(l.ops[0]), true
}

// Running returns the operation running for target.
func (q *Queue) Running(target string) (Op, bool) {
	l := q.targets[target]
	if l == nil {
		return Op{}, false
	}
	return clone(l.ops[0]), true
}

// Waiting returns the operations queued behind the running one for target.
func (q *Queue) Waiting(target string) []Op {
	l := q.targets[target]
	if l == nil {
		return nil
	}
	out := make([]Op, 0, len(l.ops)-1)
	for _, o := range l.ops[1:] {
		out = append(out, clone(o))
	}
	return out
}

// Settle removes the waiting operations for target whose action is in
// actions and returns them, with the running operation if its action is in
// actions (that one stays until the caller stops it and calls Finish). A
// manual confirmation that a node is down settles its off and reboot
// operations this way.
func (q *Queue) Settle(target string, actions ...string) (running *Op, removed []Op) {
	l := q.targets[target]
	if l == nil {
		return nil, nil
	}
	keep := l.ops[:1]
	for _, o := range l.ops[1:] {
		if slices.Contains(actions, o.Action) {
			removed = append(removed, clone(o))
			delete(q.byID, o.ID)
			continue
		}
		keep = append(keep, o)
	}
	l.ops = keep
	if slices.Contains(actions, l.ops[0].Action) {
		r := clone(l.ops[0])
		running = &r
	}
	return running, removed
}

// NextID returns the id the next new operation will get.
func (q *Queue) NextID() uint64 { return q.next }

// Take reserves the next operation id for an operation that does not go
// through the queue (a manual confirmation).
func (q *Queue) Take() uint64 {
	id := q.next
	q.next++
	return id
}

// Targets returns how many targets have operations.
func (q *Queue) Targets() int { return len(q.targets) }
