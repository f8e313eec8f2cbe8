package locktable

import (
	"fmt"
	"strings"
	"testing"
)

const res = "res"

// h drives one table in a test and records the events of the last call.
type h struct {
	t   *testing.T
	tab *Table
	ev  []Event
}

func newH(t *testing.T) *h { return &h{t: t, tab: New(32)} }

func lid(n uint32) LockID { return LockID{Node: NodeID(n%3 + 1), ID: n} }

func (x *h) req(n uint32, m Mode, f Flags) Reply {
	x.t.Helper()
	return x.reqB(n, m, f, true)
}

func (x *h) reqB(n uint32, m Mode, f Flags, bast bool) Reply {
	x.t.Helper()
	rep, ev, err := x.tab.Request(res, lid(n), 1, m, f, nil, bast)
	if err != nil {
		x.t.Fatalf("Request(%d, %v, %v): %v", n, m, f, err)
	}
	x.ev = ev
	return rep
}

func (x *h) conv(n uint32, m Mode, f Flags) Reply {
	x.t.Helper()
	rep, ev, err := x.tab.Convert(res, lid(n), m, f, nil)
	if err != nil {
		x.t.Fatalf("Convert(%d, %v, %v): %v", n, m, f, err)
	}
	x.ev = ev
	return rep
}

func (x *h) unlock(n uint32, f Flags) Reply {
	x.t.Helper()
	rep, ev, err := x.tab.Unlock(res, lid(n), f, nil)
	if err != nil {
		x.t.Fatalf("Unlock(%d, %v): %v", n, f, err)
	}
	x.ev = ev
	return rep
}

func (x *h) cancel(n uint32) Reply {
	x.t.Helper()
	rep, ev, err := x.tab.Cancel(res, lid(n))
	if err != nil {
		x.t.Fatalf("Cancel(%d): %v", n, err)
	}
	x.ev = ev
	return rep
}

// queues renders the resource's queues as "G[1:EX 2:PR] C[3:NL>EX] W[4:PR]".
func (x *h) queues() string {
	st, ok := x.tab.Snapshot(res)
	if !ok {
		return "<none>"
	}
	var b strings.Builder
	q := func(tag string, ls []Lock) {
		b.WriteString(tag + "[")
		for i, lk := range ls {
			if i > 0 {
				b.WriteString(" ")
			}
			switch lk.Status {
			case StatusConverting:
				fmt.Fprintf(&b, "%d:%v>%v", lk.ID.ID, lk.GrMode, lk.RqMode)
			case StatusWaiting:
				fmt.Fprintf(&b, "%d:%v", lk.ID.ID, lk.RqMode)
			default:
				fmt.Fprintf(&b, "%d:%v", lk.ID.ID, lk.GrMode)
			}
		}
		b.WriteString("]")
	}
	q("G", st.Granted)
	b.WriteString(" ")
	q("C", st.Converting)
	b.WriteString(" ")
	q("W", st.Waiting)
	return b.String()
}

func (x *h) wantQueues(want string) {
	x.t.Helper()
	if got := x.queues(); got != want {
		x.t.Fatalf("queues = %s, want %s", got, want)
	}
}

// events renders x.ev as "grant 2:EX, bast 1:PR".
func (x *h) events() string {
	var parts []string
	for _, e := range x.ev {
		parts = append(parts, fmt.Sprintf("%v %d:%v", e.Kind, e.Lock.ID, e.Mode))
	}
	return strings.Join(parts, ", ")
}

func (x *h) wantEvents(want string) {
	x.t.Helper()
	if got := x.events(); got != want {
		x.t.Fatalf("events = %q, want %q", got, want)
	}
}

func wantResult(t *testing.T, rep Reply, res Result, mode Mode) {
	t.Helper()
	if rep.Result != res || rep.Mode != mode {
		t.Fatalf("reply = %v at %v, want %v at %v", rep.Result, rep.Mode, res, mode)
	}
}
