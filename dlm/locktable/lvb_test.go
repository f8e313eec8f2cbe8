package locktable

import (
	"bytes"
	"testing"
)

func TestLVBOperationTable(t *testing.T) {
	// dlm_lvb_operations from fs/dlm/lock.c; rows granted, columns
	// requested, both IV NL CR CW PR PW EX. 1 read, 0 write, - nothing.
	want := []string{
		"- 1 1 1 1 1 1", // IV (new lock)
		"- 1 1 1 1 1 1", // NL
		"- - 1 1 1 1 1", // CR
		"- - - 1 1 1 1", // CW
		"- - - - 1 1 1", // PR
		"- 0 0 0 0 0 1", // PW
		"- 0 0 0 0 0 0", // EX
	}
	modes := []Mode{IV, NL, CR, CW, PR, PW, EX}
	for i, g := range modes {
		cells := bytes.Fields([]byte(want[i]))
		for j, r := range modes {
			exp := map[string]LVBAction{"-": LVBNone, "0": LVBWrite, "1": LVBRead}[string(cells[j])]
			if got := LVBOp(g, r); got != exp {
				t.Errorf("LVBOp(%v, %v) = %v, want %v", g, r, got, exp)
			}
		}
	}
}

// Every entry of the table exercised through a grant: a lock at g converts
// (or, for IV, requests) r with VALBLK on a resource whose LVB is "old"
// while the lock's own copy is "new".
func TestLVBOperationsThroughGrants(t *testing.T) {
	modes := []Mode{IV, NL, CR, CW, PR, PW, EX}
	old := bytes.Repeat([]byte{'o'}, 32)
	nw := bytes.Repeat([]byte{'n'}, 32)
	for _, g := range modes {
		for _, r := range Modes {
			tab := New(32)
			keeper := LockID{Node: 9, ID: 9}
			// keeper writes "old" (EX->NL is a write) and stays at NL so
			// the LVB lives on and every mode stays grantable.
			if _, _, err := tab.Request(res, keeper, 1, EX, ValBlk, old, false); err != nil {
				t.Fatal(err)
			}
			if _, _, err := tab.Convert(res, keeper, NL, ValBlk, old); err != nil {
				t.Fatal(err)
			}
			me := LockID{Node: 1, ID: 1}
			var rep Reply
			var err error
			if g == IV {
				rep, _, err = tab.Request(res, me, 1, r, ValBlk, nw, false)
			} else {
				if _, _, err = tab.Request(res, me, 1, g, 0, nil, false); err != nil {
					t.Fatal(err)
				}
				rep, _, err = tab.Convert(res, me, r, ValBlk, nw)
			}
			if err != nil || rep.Result != ResultGranted {
				t.Fatalf("%v->%v: %v %v", g, r, rep.Result, err)
			}
			st, _ := tab.Snapshot(res)
			switch LVBOp(g, r) {
			case LVBRead:
				if !bytes.Equal(rep.LVB, old) || rep.LVBSeq != 1 {
					t.Errorf("%v->%v: read returned %q seq %d, want old seq 1", g, r, rep.LVB, rep.LVBSeq)
				}
				if !bytes.Equal(st.LVB, old) || st.LVBSeq != 1 {
					t.Errorf("%v->%v: read changed the resource LVB", g, r)
				}
			case LVBWrite:
				if rep.LVB != nil {
					t.Errorf("%v->%v: write returned an LVB", g, r)
				}
				if !bytes.Equal(st.LVB, nw) || st.LVBSeq != 2 || rep.LVBSeq != 2 {
					t.Errorf("%v->%v: resource LVB %q seq %d (reply seq %d), want new seq 2", g, r, st.LVB, st.LVBSeq, rep.LVBSeq)
				}
			case LVBNone:
				if rep.LVB != nil || !bytes.Equal(st.LVB, old) || st.LVBSeq != 1 {
					t.Errorf("%v->%v: nothing should happen, got reply %q resource %q seq %d", g, r, rep.LVB, st.LVB, st.LVBSeq)
				}
			}
		}
	}
}

func TestLVBRules(t *testing.T) {
	a := bytes.Repeat([]byte{'a'}, 32)
	b := bytes.Repeat([]byte{'b'}, 32)
	id1, id2, id3 := LockID{1, 1}, LockID{2, 2}, LockID{3, 3}

	t.Run("no LVB is returned before the first write", func(t *testing.T) {
		tab := New(32)
		rep, _, _ := tab.Request(res, id1, 1, PR, ValBlk, nil, false)
		if rep.LVB != nil {
			t.Fatalf("got LVB %q before any write", rep.LVB)
		}
	})

	t.Run("unlock from PW or EX writes, from PR does not", func(t *testing.T) {
		for _, m := range Modes {
			tab := New(32)
			tab.Request(res, id2, 1, NL, 0, nil, false) // keeps the resource
			tab.Request(res, id1, 1, m, ValBlk, nil, false)
			if _, _, err := tab.Unlock(res, id1, 0, a); err != nil {
				t.Fatal(err)
			}
			st, _ := tab.Snapshot(res)
			wrote := bytes.Equal(st.LVB, a)
			if wrote != (m >= PW) {
				t.Errorf("unlock from %v: wrote=%v", m, wrote)
			}
			if wrote && st.LVBSeq != 1 {
				t.Errorf("unlock from %v: seq %d, want 1", m, st.LVBSeq)
			}
		}
	})

	t.Run("VALBLK on the request makes the unlock write", func(t *testing.T) {
		tab := New(32)
		tab.Request(res, id2, 1, NL, 0, nil, false)
		tab.Request(res, id1, 1, EX, 0, nil, false) // no VALBLK
		tab.Unlock(res, id1, 0, a)
		if st, _ := tab.Snapshot(res); st.LVB != nil {
			t.Fatal("unlock without VALBLK wrote the LVB")
		}
	})

	t.Run("sequence numbers increment on every write", func(t *testing.T) {
		tab := New(32)
		tab.Request(res, id2, 1, NL, 0, nil, false)
		tab.Request(res, id1, 1, EX, ValBlk, a, false)
		for i := uint32(1); i <= 3; i++ {
			tab.Convert(res, id1, NL, ValBlk, a)
			rep, _, _ := tab.Convert(res, id1, EX, ValBlk, nil)
			if rep.LVBSeq != i {
				t.Fatalf("after %d writes read seq %d", i, rep.LVBSeq)
			}
		}
	})

	t.Run("IVVALBLK invalidates until the next PW or EX writer", func(t *testing.T) {
		tab := New(32)
		tab.Request(res, id3, 1, NL, 0, nil, false)
		tab.Request(res, id1, 1, EX, ValBlk, a, false)
		tab.Convert(res, id1, NL, ValBlk, a) // writes a
		tab.Convert(res, id1, EX, 0, nil)
		tab.Unlock(res, id1, IVValBlk, nil)
		rep, _, _ := tab.Request(res, id2, 1, PR, ValBlk, nil, false)
		if rep.SB&ValNotValid == 0 {
			t.Fatalf("read after IVVALBLK: SB %v, want VALNOTVALID", rep.SB)
		}
		tab.Convert(res, id2, NL, 0, nil)
		// a PR holder cannot validate it
		tab.Convert(res, id2, PR, ValBlk, nil)
		if _, _, err := tab.Unlock(res, id2, 0, b); err != nil {
			t.Fatal(err)
		}
		rep, _, _ = tab.Request(res, id2, 1, EX, ValBlk, nil, false)
		if rep.SB&ValNotValid == 0 {
			t.Fatalf("after PR unlock: SB %v, want VALNOTVALID", rep.SB)
		}
		tab.Convert(res, id2, NL, ValBlk, b) // EX->NL writes b
		rep, _, _ = tab.Request(res, id1, 1, PR, ValBlk, nil, false)
		if rep.SB&ValNotValid != 0 || !bytes.Equal(rep.LVB, b) {
			t.Fatalf("after a PW/EX write: SB %v LVB %q, want valid b", rep.SB, rep.LVB)
		}
	})

	t.Run("NL locks keep the LVB; it goes with the last lock", func(t *testing.T) {
		tab := New(32)
		tab.Request(res, id1, 1, EX, ValBlk, a, false)
		tab.Request(res, id2, 1, NL, 0, nil, false) // queued? no: NL is compatible
		tab.Unlock(res, id1, 0, a)
		rep, _, _ := tab.Request(res, id3, 1, PR, ValBlk, nil, false)
		if !bytes.Equal(rep.LVB, a) {
			t.Fatalf("LVB lost while an NL lock remained: %q", rep.LVB)
		}
		tab.Unlock(res, id3, 0, nil)
		tab.Unlock(res, id2, 0, nil)
		if tab.Has(res) {
			t.Fatal("resource kept after its last lock")
		}
		rep, _, _ = tab.Request(res, id3, 1, PR, ValBlk, nil, false)
		if rep.LVB != nil {
			t.Fatalf("LVB survived the last lock: %q", rep.LVB)
		}
	})

	t.Run("wrong LVB length is refused", func(t *testing.T) {
		tab := New(64)
		if _, _, err := tab.Request(res, id1, 1, EX, ValBlk, a, false); err == nil {
			t.Fatal("32-byte LVB accepted in a 64-byte lockspace")
		}
	})
}
