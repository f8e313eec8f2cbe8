package locktable

import (
	"testing"

	"github.com/replicad/replicad/internal/testenv"
)

// Random operations on one resource, checking after every step that the
// granted modes (granted and converting queues) are pairwise compatible,
// that every lock is on exactly the queue its status names, and that every
// request gets exactly one final outcome.
func TestRandomOperationsKeepInvariants(t *testing.T) {
	rng := testenv.Rand(t)
	flagsPool := []Flags{0, 0, 0, NoQueue, NoQueueBast | NoQueue, HeadQue, NoOrder, AltPR, AltCW, ValBlk}
	convPool := []Flags{0, 0, ConvDeadlk, NoDlckWt, QueCvt, NoQueue, HeadQue, ValBlk | ConvDeadlk}
	for round := 0; round < 200; round++ {
		tab := New(32)
		live := map[uint32]bool{}
		next := uint32(1)
		for step := 0; step < 60; step++ {
			switch op := rng.IntN(5); {
			case op == 0 || len(live) == 0:
				m := Modes[rng.IntN(6)]
				f := flagsPool[rng.IntN(len(flagsPool))]
				rep, _, err := tab.Request(res, lid(next), 1, m, f, nil, rng.IntN(2) == 0)
				if err != nil {
					t.Fatalf("request: %v", err)
				}
				if rep.Result != ResultWouldBlock {
					live[next] = true
				}
				next++
			default:
				var id uint32
				k := rng.IntN(len(live))
				for l := range live {
					if k == 0 {
						id = l
						break
					}
					k--
				}
				lk, ok := tab.Lock(res, lid(id))
				if !ok {
					t.Fatalf("live lock %d missing", id)
				}
				switch op {
				case 1:
					if lk.Status != StatusGranted {
						continue
					}
					m := Modes[rng.IntN(6)]
					f := convPool[rng.IntN(len(convPool))]
					if f&QueCvt != 0 && !QuecvtAllowed(lk.GrMode, m) {
						f &^= QueCvt
					}
					if _, _, err := tab.Convert(res, lid(id), m, f, nil); err != nil {
						t.Fatalf("convert: %v", err)
					}
				case 2:
					if lk.Status != StatusGranted {
						continue
					}
					tab.Unlock(res, lid(id), 0, nil)
					delete(live, id)
				case 3:
					rep, _, _ := tab.Cancel(res, lid(id))
					if rep.Result == ResultCancelled && lk.Status == StatusWaiting {
						delete(live, id)
					}
				case 4:
					tab.Unlock(res, lid(id), ForceUnlock, nil)
					delete(live, id)
				}
			}
			checkTable(t, tab, live)
		}
	}
}

func checkTable(t *testing.T, tab *Table, live map[uint32]bool) {
	t.Helper()
	st, ok := tab.Snapshot(res)
	if !ok {
		if len(live) != 0 {
			t.Fatalf("resource gone with %d live locks", len(live))
		}
		return
	}
	var held []Lock
	for _, lk := range st.Granted {
		if lk.Status != StatusGranted || lk.RqMode != IV || !lk.GrMode.Valid() {
			t.Fatalf("granted queue holds %+v", lk)
		}
		held = append(held, lk)
	}
	for _, lk := range st.Converting {
		if lk.Status != StatusConverting || !lk.GrMode.Valid() || !lk.RqMode.Valid() {
			t.Fatalf("converting queue holds %+v", lk)
		}
		held = append(held, lk)
	}
	for _, lk := range st.Waiting {
		if lk.Status != StatusWaiting || lk.GrMode != IV {
			t.Fatalf("waiting queue holds %+v", lk)
		}
	}
	for i := range held {
		for j := i + 1; j < len(held); j++ {
			if !Compatible(held[i].GrMode, held[j].GrMode) {
				t.Fatalf("incompatible holders %v %v and %v %v", held[i].ID, held[i].GrMode, held[j].ID, held[j].GrMode)
			}
		}
	}
	if n := len(st.Granted) + len(st.Converting) + len(st.Waiting); n != len(live) {
		t.Fatalf("%d locks on queues, %d live", n, len(live))
	}
}
