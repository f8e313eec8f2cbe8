package fence

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/fence/journal"
)

func TestHistorySurvivesRestartAndIDsContinue(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi-a", []string{"node-a"}, nil, func(d *DeviceConfig) { d.Retries = 0 })
	f := r.start(Options{})
	ctx := context.Background()
	if _, err := f.Fence(ctx, req("node-a", ActionReboot)); err != nil {
		t.Fatal(err)
	}
	a.Set("fail-off", "always")
	if _, err := f.Fence(ctx, req("node-a", ActionOff)); err == nil {
		t.Fatal("fence with a failing agent succeeded")
	}
	if _, err := f.Confirm(ctx, "node-a", "repctl root@node-b", "checked the rack"); err != nil {
		t.Fatal(err)
	}
	before := f.History(HistoryQuery{})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	f2 := r.start(Options{})
	after := f2.History(HistoryQuery{})
	if len(after) != 3 || len(before) != 3 {
		t.Fatalf("before %d ops, after %d; want 3", len(before), len(after))
	}
	for i := range after {
		b, a := before[i], after[i]
		if a.ID != b.ID || a.State != b.State || a.Action != b.Action || a.Error != b.Error ||
			len(a.Steps) != len(b.Steps) || len(a.Requesters) != len(b.Requesters) || !a.Completed.Equal(b.Completed) {
			t.Fatalf("op %d changed across restart:\nbefore %+v\nafter  %+v", i, b, a)
		}
	}
	want := []OpState{StateConfirmed, StateFailed, StateSuccess}
	for i, op := range after {
		if op.State != want[i] {
			t.Fatalf("op %d state %s, want %s", op.ID, op.State, want[i])
		}
	}
	a.Set("fail-off", "")
	res, err := f2.Fence(ctx, req("node-a", ActionOff))
	if err != nil {
		t.Fatal(err)
	}
	if res.ID <= after[0].ID {
		t.Fatalf("new op id %d does not follow %d", res.ID, after[0].ID)
	}
	if r := after[2].Requesters[0]; r.Origin != "test/node-a" || r.Reason != "test fences node-a" {
		t.Fatalf("requester %+v", r)
	}
}

// Crash during an append: every prefix of the last record is a torn tail
// that is detected, cut off, and not fatal; earlier records all survive and
// the next append is readable.
func TestTornLastRecordIsSkippedAtEveryCutPoint(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "h.log")
	h, _, err := openHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0).UTC()
	who := &Requester{Origin: "o", Reason: "r", At: now}
	events := []Event{
		{Kind: EventStart, Op: 1, Time: now, Target: "node-a", Action: ActionOff, Requester: who},
		{Kind: EventFinish, Op: 1, Time: now.Add(time.Second), State: StateSuccess, Level: 1},
		{Kind: EventStart, Op: 2, Time: now.Add(2 * time.Second), Target: "node-b", Action: ActionReboot, Requester: who},
	}
	var sizes []int64
	for _, e := range events {
		if err := h.append(e); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(path)
		sizes = append(sizes, st.Size())
	}
	h.close()
	full, _ := os.ReadFile(path)
	lastStart := sizes[1]
	for cut := lastStart + 1; cut < int64(len(full)); cut++ {
		p := filepath.Join(dir, "cut.log")
		if err := os.WriteFile(p, full[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		h, rep, err := openHistory(p)
		if err != nil {
			t.Fatalf("cut at %d: open failed: %v", cut, err)
		}
		if rep.Truncated != cut-lastStart || rep.Records != 2 {
			t.Fatalf("cut at %d: report %+v", cut, rep)
		}
		ops := h.query(HistoryQuery{})
		if len(ops) != 1 || ops[0].State != StateSuccess {
			t.Fatalf("cut at %d: ops %+v", cut, ops)
		}
		if st, _ := os.Stat(p); st.Size() != lastStart {
			t.Fatalf("cut at %d: file is %d bytes after open, want truncated to %d", cut, st.Size(), lastStart)
		}
		if err := h.append(events[2]); err != nil {
			t.Fatal(err)
		}
		h.close()
		h, rep, err = openHistory(p)
		if err != nil || rep.Records != 3 || len(rep.Damaged) != 0 {
			t.Fatalf("cut at %d: reopen after append: %+v %v", cut, rep, err)
		}
		// Op 2 has a start and no finish: a crash interrupted it.
		if ops := h.query(HistoryQuery{Target: "node-b"}); len(ops) != 1 || ops[0].State != StateInterrupted {
			t.Fatalf("cut at %d: op 2 = %+v, want interrupted", cut, ops)
		}
		h.close()
	}
}

func TestCorruptMiddleRecordIsSkippedNotFatal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.log")
	h, _, err := openHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0).UTC()
	who := &Requester{Origin: "o", Reason: "r", At: now}
	for op := uint64(1); op <= 3; op++ {
		h.append(Event{Kind: EventStart, Op: op, Time: now, Target: "node-a", Action: ActionOff, Requester: who})
	}
	h.close()
	data, _ := os.ReadFile(path)
	res := journal.Parse(data)
	data[res.Records[1].Offset+journal.HeaderSize+3] ^= 0x55
	os.WriteFile(path, data, 0o600)
	h, rep, err := openHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	if rep.Records != 2 || len(rep.Damaged) != 1 || rep.Truncated != 0 {
		t.Fatalf("report %+v", rep)
	}
	ops := h.query(HistoryQuery{})
	if len(ops) != 2 || ops[0].ID != 3 || ops[1].ID != 1 {
		t.Fatalf("ops %+v", ops)
	}
	if h.nextID() != 4 {
		t.Fatalf("nextID = %d", h.nextID())
	}
}

func TestUndecodableRecordIsCountedAndSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.log")
	var data []byte
	data, _ = journal.AppendFrame(data, []byte(`{"kind":"start","op":1,"target":"node-a","action":"off","requester":{"origin":"o","reason":"r"}}`))
	data, _ = journal.AppendFrame(data, []byte(`not json`))
	data, _ = journal.AppendFrame(data, []byte(`{"kind":"explode","op":2}`))
	os.WriteFile(path, data, 0o600)
	h, rep, err := openHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	if rep.Undecodable != 2 || len(h.query(HistoryQuery{})) != 1 {
		t.Fatalf("report %+v", rep)
	}
}

func TestLedgerFoldAndQuery(t *testing.T) {
	l := newLedger()
	t0 := time.Unix(1000, 0).UTC()
	who := func(o string) *Requester { return &Requester{Origin: o, Reason: "r", At: t0} }
	// A join can land before its op's start (two goroutines appending).
	l.apply(Event{Kind: EventJoin, Op: 1, Time: t0, Requester: who("b")})
	l.apply(Event{Kind: EventStart, Op: 1, Time: t0, Target: "node-a", Action: ActionOff, Requester: who("a")})
	l.apply(Event{Kind: EventFinish, Op: 1, Time: t0.Add(time.Second), State: StateSuccess, Level: 2})
	l.apply(Event{Kind: EventStart, Op: 2, Time: t0.Add(time.Minute), Target: "node-a", Action: ActionOn, Requester: who("c")})
	l.apply(Event{Kind: EventFinish, Op: 2, Time: t0.Add(2 * time.Minute), State: StateSuccess})
	l.apply(Event{Kind: EventStart, Op: 3, Time: t0.Add(time.Hour), Target: "node-b", Action: ActionReboot, Requester: who("d")})
	l.apply(Event{Kind: EventFinish, Op: 3, Time: t0.Add(time.Hour), State: StateFailed, Error: "boom"})

	op1 := l.query(HistoryQuery{Target: "node-a", Limit: 1})
	if len(op1) != 1 || op1[0].ID != 2 {
		t.Fatalf("newest node-a op = %+v", op1)
	}
	all := l.query(HistoryQuery{Target: "node-a"})
	if len(all) != 2 || all[1].Target != "node-a" || len(all[1].Requesters) != 2 || all[1].Level != 2 {
		t.Fatalf("node-a ops = %+v", all)
	}
	if got := l.query(HistoryQuery{Since: t0.Add(30 * time.Minute)}); len(got) != 1 || got[0].ID != 3 {
		t.Fatalf("since query = %+v", got)
	}
	// An on is not a fence; a failed reboot is not either.
	last, ok := l.lastFenced("node-a")
	if !ok || last.ID != 1 {
		t.Fatalf("lastFenced(node-a) = %+v %v", last, ok)
	}
	if _, ok := l.lastFenced("node-b"); ok {
		t.Fatal("failed reboot counted as fenced")
	}
}

// FuzzLoadHistory reads arbitrary bytes as a history file: damage is
// never fatal, nothing panics, and after cutting a torn tail (what
// openHistory does) the same operations load again.
func FuzzLoadHistory(f *testing.F) {
	var seed []byte
	seed, _ = journal.AppendFrame(seed, []byte(`{"kind":"start","op":3,"time":"2026-01-01T00:00:00Z","target":"node-a","action":"off","requester":{"origin":"o","reason":"r","at":"2026-01-01T00:00:00Z"}}`))
	seed, _ = journal.AppendFrame(seed, []byte(`{"kind":"finish","op":3,"state":"success","steps":[{"device":"d","action":"off","start":"2026-01-01T00:00:00Z","end":"2026-01-01T00:00:01Z"}]}`))
	f.Add(seed)
	f.Add(append(seed[:len(seed)-3:len(seed)-3], "RFJ1"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, _, res := loadLedger(data)
		ops := l.query(HistoryQuery{})
		for _, op := range ops {
			if op.ID > l.maxID {
				t.Fatalf("op %d above maxID %d", op.ID, l.maxID)
			}
			l.lastFenced(op.Target)
		}
		if res.TornTail {
			l2, rep, res2 := loadLedger(data[:res.End])
			if res2.TornTail || len(l2.query(HistoryQuery{})) != len(ops) || rep.Records != len(res.Records) {
				t.Fatalf("cutting the torn tail changed the history")
			}
		}
	})
}

// One writer per history file: a second open (another daemon on the same
// configuration) is refused while the first holds it, and works after.
func TestHistoryFileHasOneWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.log")
	h, _, err := openHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := openHistory(path); !errors.Is(err, ErrHistory) || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second open = %v; want ErrHistory, in use", err)
	}
	h.close()
	h, _, err = openHistory(path)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	h.close()
}
