package queue

import (
	"slices"
	"testing"

	"github.com/replicad/replicad/internal/testenv"
)

func TestSameActionMergesIntoRunning(t *testing.T) {
	q := New(1)
	op, d := q.Submit("a", "off", 10)
	if d != Started || op.ID != 1 {
		t.Fatalf("first submit = %v %v, want started op 1", op, d)
	}
	op, d = q.Submit("a", "off", 11)
	if d != Merged || op.ID != 1 || !slices.Equal(op.Requests, []uint64{10, 11}) {
		t.Fatalf("second submit = %+v %v, want merged into op 1 with both requests", op, d)
	}
	if _, ok := q.Finish(1); ok {
		t.Fatal("Finish returned a next op for an empty line")
	}
	if q.Targets() != 0 {
		t.Fatal("finished target still tracked")
	}
}

func TestOtherTargetsRunInParallel(t *testing.T) {
	q := New(1)
	_, d1 := q.Submit("a", "off", 1)
	_, d2 := q.Submit("b", "off", 2)
	if d1 != Started || d2 != Started {
		t.Fatalf("decisions %v %v, want both started", d1, d2)
	}
}

func TestOffNeverMergesPastAQueuedOn(t *testing.T) {
	q := New(1)
	q.Submit("a", "off", 1)
	on, d := q.Submit("a", "on", 2)
	if d != Queued {
		t.Fatalf("on = %v, want queued", d)
	}
	off2, d := q.Submit("a", "off", 3)
	if d != Queued || off2.ID == 1 {
		t.Fatalf("off after queued on = %+v %v, want a new queued op", off2, d)
	}
	_, d = q.Submit("a", "off", 4)
	if d != Merged {
		t.Fatalf("off after queued off = %v, want merged", d)
	}
	next, ok := q.Finish(1)
	if !ok || next.ID != on.ID {
		t.Fatalf("after op 1: next %+v, want the on", next)
	}
	next, _ = q.Finish(on.ID)
	if next.ID != off2.ID || !slices.Equal(next.Requests, []uint64{3, 4}) {
		t.Fatalf("after on: next %+v, want op %d with requests 3,4", next, off2.ID)
	}
}

func TestSettleRemovesWaitingOffAndRebootKeepsOn(t *testing.T) {
	q := New(1)
	q.Submit("a", "reboot", 1)
	q.Submit("a", "off", 2)
	q.Submit("a", "on", 3)
	q.Submit("a", "off", 4)
	running, removed := q.Settle("a", "off", "reboot")
	if running == nil || running.ID != 1 {
		t.Fatalf("running = %v, want op 1", running)
	}
	if len(removed) != 2 || removed[0].Requests[0] != 2 || removed[1].Requests[0] != 4 {
		t.Fatalf("removed = %+v, want the two waiting offs", removed)
	}
	w := q.Waiting("a")
	if len(w) != 1 || w[0].Action != "on" {
		t.Fatalf("waiting = %+v, want only the on", w)
	}
}

func TestFinishOfANonRunningOpPanics(t *testing.T) {
	q := New(1)
	q.Submit("a", "off", 1)
	q.Submit("a", "on", 2)
	defer func() {
		if recover() == nil {
			t.Fatal("Finish(2) of a waiting op did not panic")
		}
	}()
	q.Finish(2)
}

// TestRandomSequencesKeepInvariants drives the queue with random submits,
// finishes and settles and checks, after every step, the rules in doc.go:
// one running op per target, requests answered by exactly one op, ops start
// in submission order, and a merge only into the last op of the line.
// The reference is a plain list per target.
func TestRandomSequencesKeepInvariants(t *testing.T) {
	r := testenv.Rand(t)
	for round := 0; round < 300; round++ {
		q := New(100)
		targets := []string{"a", "b", "c"}
		actions := []string{"off", "on", "reboot"}
		// reference: per target, the ops in order, as (id, action, requests)
		type refOp struct {
			id      uint64
			action  string
			reqs    []uint64
			started bool
		}
		ref := map[string][]*refOp{}
		var req uint64
		lastStarted := map[string]uint64{}
		for step := 0; step < 60; step++ {
			tg := targets[r.IntN(len(targets))]
			switch r.IntN(4) {
			case 0, 1:
				req++
				act := actions[r.IntN(len(actions))]
				op, d := q.Submit(tg, act, req)
				line := ref[tg]
				switch {
				case len(line) > 0 && line[len(line)-1].action == act:
					if d != Merged || op.ID != line[len(line)-1].id {
						t.Fatalf("round %d: submit %s %s = %v %d, want merge into %d", round, tg, act, d, op.ID, line[len(line)-1].id)
					}
					line[len(line)-1].reqs = append(line[len(line)-1].reqs, req)
				case len(line) > 0:
					if d != Queued {
						t.Fatalf("round %d: want queued, got %v", round, d)
					}
					ref[tg] = append(line, &refOp{id: op.ID, action: act, reqs: []uint64{req}})
				default:
					if d != Started {
						t.Fatalf("round %d: want started, got %v", round, d)
					}
					ref[tg] = []*refOp{{id: op.ID, action: act, reqs: []uint64{req}, started: true}}
				}
			case 2:
				line := ref[tg]
				if len(line) == 0 {
					continue
				}
				next, ok := q.Finish(line[0].id)
				ref[tg] = line[1:]
				if len(line) == 1 {
					if ok {
						t.Fatalf("round %d: Finish returned %v for empty line", round, next)
					}
					delete(ref, tg)
					continue
				}
				if !ok || next.ID != line[1].id {
					t.Fatalf("round %d: next = %v, want %d", round, next.ID, line[1].id)
				}
				if next.ID <= lastStarted[tg] {
					t.Fatalf("round %d: op %d started after op %d", round, next.ID, lastStarted[tg])
				}
				lastStarted[tg] = next.ID
				line[1].started = true
			case 3:
				line := ref[tg]
				running, removed := q.Settle(tg, "off", "reboot")
				if len(line) == 0 {
					if running != nil || removed != nil {
						t.Fatalf("round %d: settle of idle target returned ops", round)
					}
					continue
				}
				var keep []*refOp
				var wantRemoved []uint64
				for i, o := range line {
					if i > 0 && o.action != "on" {
						wantRemoved = append(wantRemoved, o.id)
						continue
					}
					keep = append(keep, o)
				}
				var gotRemoved []uint64
				for _, o := range removed {
					gotRemoved = append(gotRemoved, o.ID)
				}
				if !slices.Equal(gotRemoved, wantRemoved) {
					t.Fatalf("round %d: settled %v, want %v", round, gotRemoved, wantRemoved)
				}
				if (running != nil) != (line[0].action != "on") {
					t.Fatalf("round %d: running settled = %v for action %s", round, running, line[0].action)
				}
				ref[tg] = keep
			}
			// Compare the whole state with the reference.
			for _, tg := range targets {
				line := ref[tg]
				run, ok := q.Running(tg)
				if ok != (len(line) > 0) {
					t.Fatalf("round %d: Running(%s) = %v, reference has %d ops", round, tg, ok, len(line))
				}
				if !ok {
					continue
				}
				got := append([]Op{run}, q.Waiting(tg)...)
				if len(got) != len(line) {
					t.Fatalf("round %d: %s has %d ops, want %d", round, tg, len(got), len(line))
				}
				for i := range got {
					if got[i].ID != line[i].id || got[i].Action != line[i].action || !slices.Equal(got[i].Requests, line[i].reqs) {
						t.Fatalf("round %d: %s op %d = %+v, want %+v", round, tg, i, got[i], *line[i])
					}
				}
			}
		}
	}
}
