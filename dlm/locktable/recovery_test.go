package locktable

import (
	"bytes"
	"testing"
)

func TestPurge(t *testing.T) {
	lv := bytes.Repeat([]byte{'x'}, 32)
	dead := NodeID(2)
	keep := func(id LockID, _ uint64) bool { return id.Node != dead }

	t.Run("a surviving master purging a dead PW/EX VALBLK holder invalidates the LVB", func(t *testing.T) {
		for _, m := range Modes {
			for _, valblk := range []bool{false, true} {
				tab := New(32)
				w := LockID{1, 1}
				tab.Request(res, w, 1, EX, ValBlk, lv, false)
				tab.Convert(res, w, NL, ValBlk, lv) // LVB written, valid
				var f Flags
				if valblk {
					f = ValBlk
				}
				tab.Request(res, LockID{dead, 5}, 1, m, f, nil, false)
				if n := tab.Purge(keep); n != 1 {
					t.Fatalf("purged %d, want 1", n)
				}
				tab.FinishRecovery()
				st, _ := tab.Snapshot(res)
				want := valblk && m >= PW
				if st.ValNotValid != want {
					t.Errorf("dead %v valblk=%v: VALNOTVALID=%v, want %v", m, valblk, st.ValNotValid, want)
				}
				if _, ok := tab.Lock(res, LockID{dead, 5}); ok {
					t.Error("dead lock still present")
				}
			}
		}
	})

	t.Run("waiters blocked by a dead holder are granted after recovery", func(t *testing.T) {
		tab := New(32)
		tab.Request(res, LockID{dead, 1}, 1, EX, 0, nil, false)
		tab.Request(res, LockID{1, 2}, 1, PR, 0, nil, false)
		tab.Request(res, LockID{3, 3}, 1, PR, 0, nil, false)
		tab.Purge(keep)
		tab.FinishRecovery()
		x := &h{t: t, tab: tab}
		tab.GrantRecovered(func(_ string, ev []Event) { x.ev = append(x.ev, ev...) })
		x.wantEvents("grant 2:PR, grant 3:PR")
	})

	t.Run("an old incarnation is purged even though the node is back", func(t *testing.T) {
		tab := New(32)
		tab.Request(res, LockID{2, 1}, 7, EX, 0, nil, false)
		tab.Purge(func(id LockID, inc uint64) bool { return id.Node != 2 || inc == 8 })
		if tab.Has(res) {
			t.Fatal("old incarnation's lock survived")
		}
	})
}

func TestNewMasterRecovery(t *testing.T) {
	lv := func(c byte) []byte { return bytes.Repeat([]byte{c}, 32) }
	add := func(t *testing.T, tab *Table, rl RecoveredLock) {
		t.Helper()
		if err := tab.AddRecovered(res, rl); err != nil {
			t.Fatal(err)
		}
	}
	read := func(tab *Table) Reply {
		rep, _, err := tab.Request(res, LockID{9, 9}, 1, NL, ValBlk, nil, false)
		if err != nil {
			panic(err)
		}
		return rep
	}

	t.Run("LVB survives from a VALBLK lock above CR and stays valid", func(t *testing.T) {
		tab := New(32)
		add(t, tab, RecoveredLock{ID: LockID{1, 1}, GrMode: NL, Status: StatusGranted, RqMode: IV, Flags: ValBlk, LVB: lv('n'), LVBSeq: 9})
		add(t, tab, RecoveredLock{ID: LockID{3, 1}, GrMode: PR, Status: StatusGranted, RqMode: IV, Flags: ValBlk, LVB: lv('p'), LVBSeq: 4})
		tab.FinishRecovery()
		rep := read(tab)
		if !bytes.Equal(rep.LVB, lv('p')) || rep.LVBSeq != 4 || rep.SB&ValNotValid != 0 {
			t.Fatalf("LVB %q seq %d SB %v, want p seq 4 valid", rep.LVB, rep.LVBSeq, rep.SB)
		}
	})

	t.Run("only NL/CR holders left: highest sequence, marked invalid", func(t *testing.T) {
		tab := New(32)
		add(t, tab, RecoveredLock{ID: LockID{1, 1}, GrMode: NL, Status: StatusGranted, RqMode: IV, Flags: ValBlk, LVB: lv('a'), LVBSeq: 3})
		add(t, tab, RecoveredLock{ID: LockID{3, 1}, GrMode: CR, Status: StatusGranted, RqMode: IV, Flags: ValBlk, LVB: lv('b'), LVBSeq: 5})
		add(t, tab, RecoveredLock{ID: LockID{3, 2}, GrMode: CR, Status: StatusGranted, RqMode: IV, Flags: ValBlk, LVB: lv('c'), LVBSeq: 4})
		tab.FinishRecovery()
		rep := read(tab)
		if !bytes.Equal(rep.LVB, lv('b')) || rep.LVBSeq != 5 || rep.SB&ValNotValid == 0 {
			t.Fatalf("LVB %q seq %d SB %v, want b seq 5 invalid", rep.LVB, rep.LVBSeq, rep.SB)
		}
	})

	t.Run("no VALBLK lock: no LVB, nothing invalid", func(t *testing.T) {
		tab := New(32)
		add(t, tab, RecoveredLock{ID: LockID{1, 1}, GrMode: PR, Status: StatusGranted, RqMode: IV})
		tab.FinishRecovery()
		rep := read(tab)
		if rep.LVB != nil || rep.SB&ValNotValid != 0 {
			t.Fatalf("LVB %q SB %v, want none", rep.LVB, rep.SB)
		}
	})

	t.Run("PR->CW of unknown outcome takes a granted CW lock's mode", func(t *testing.T) {
		tab := New(32)
		add(t, tab, RecoveredLock{ID: LockID{1, 1}, GrMode: CW, Status: StatusGranted, RqMode: IV})
		add(t, tab, RecoveredLock{ID: LockID{3, 1}, GrMode: IV, RqMode: CW, Status: StatusConverting})
		tab.FinishRecovery()
		var got []Event
		tab.GrantRecovered(func(_ string, ev []Event) { got = append(got, ev...) })
		x := &h{t: t, tab: tab, ev: got}
		x.wantEvents("grant 1:CW")
		if lk, _ := tab.Lock(res, LockID{3, 1}); lk.GrMode != CW || lk.Status != StatusGranted {
			t.Fatalf("lock %v at %v, want granted CW", lk.Status, lk.GrMode)
		}
	})

	t.Run("PR->CW of unknown outcome with nothing else takes its requested mode", func(t *testing.T) {
		tab := New(32)
		add(t, tab, RecoveredLock{ID: LockID{3, 1}, GrMode: IV, RqMode: PR, Status: StatusConverting})
		add(t, tab, RecoveredLock{ID: LockID{1, 2}, GrMode: NL, Status: StatusGranted, RqMode: IV})
		tab.FinishRecovery()
		if lk, _ := tab.Lock(res, LockID{3, 1}); lk.GrMode != PR {
			t.Fatalf("granted mode %v, want PR", lk.GrMode)
		}
	})

	t.Run("PR<->CW of unknown outcome takes the mode of a converting lock holding CW", func(t *testing.T) {
		tab := New(32)
		add(t, tab, RecoveredLock{ID: LockID{2, 9}, GrMode: CW, RqMode: PW, Status: StatusConverting})
		add(t, tab, RecoveredLock{ID: LockID{3, 9}, GrMode: IV, RqMode: PR, Status: StatusConverting})
		tab.FinishRecovery()
		if lk, _ := tab.Lock(res, LockID{3, 9}); lk.GrMode != CW {
			t.Fatalf("granted mode %v beside a CW holder, want CW", lk.GrMode)
		}
	})

	t.Run("an abandoned rebuild leaves nothing behind", func(t *testing.T) {
		tab := New(32)
		add(t, tab, RecoveredLock{ID: LockID{1, 1}, GrMode: PR, Status: StatusGranted, RqMode: IV})
		tab.AbortRebuild()
		if tab.Has(res) {
			t.Fatal("rebuild survived AbortRebuild")
		}
	})

	t.Run("a resource mastered here refuses recovered locks", func(t *testing.T) {
		tab := New(32)
		tab.Request(res, LockID{1, 1}, 1, PR, 0, nil, false)
		if err := tab.AddRecovered(res, RecoveredLock{ID: LockID{3, 1}, GrMode: PR, Status: StatusGranted, RqMode: IV}); err == nil {
			t.Fatal("AddRecovered onto an owned resource succeeded")
		}
	})

	t.Run("malformed recovered locks are refused", func(t *testing.T) {
		tab := New(32)
		for _, rl := range []RecoveredLock{
			{ID: LockID{1, 1}, GrMode: IV, RqMode: IV, Status: StatusGranted},
			{ID: LockID{1, 1}, GrMode: PR, RqMode: EX, Status: StatusWaiting},
			{ID: LockID{1, 1}, GrMode: PR, RqMode: IV, Status: StatusNone},
			{ID: LockID{1, 1}, GrMode: PR, RqMode: IV, Status: StatusGranted, LVB: []byte{1}},
		} {
			if err := tab.AddRecovered(res, rl); err == nil {
				t.Errorf("accepted %+v", rl)
			}
		}
	})
}
