package locktable

import "testing"

// The grant-order rules of _can_be_granted, one case each, named after the
// rule (VAXcluster Principles chapter 6 as cited in fs/dlm/lock.c).
func TestGrantOrder(t *testing.T) {
	t.Run("waiters are granted FIFO", func(t *testing.T) {
		x := newH(t)
		x.req(1, EX, 0)
		x.req(2, PR, 0)
		x.req(3, EX, 0)
		x.req(4, PR, 0)
		x.wantQueues("G[1:EX] C[] W[2:PR 3:EX 4:PR]")
		x.unlock(1, 0)
		// 2 is granted; 3 blocks on it, and 4 may not pass 3
		x.wantEvents("grant 2:PR, bast 2:EX")
		x.wantQueues("G[2:PR] C[] W[3:EX 4:PR]")
		x.unlock(2, 0)
		x.wantEvents("grant 3:EX, bast 3:PR")
		x.unlock(3, 0)
		x.wantEvents("grant 4:PR")
	})

	t.Run("new request waits behind a non-empty wait queue even if compatible", func(t *testing.T) {
		x := newH(t)
		x.req(1, PR, 0)
		x.req(2, EX, 0)
		wantResult(t, x.req(3, PR, 0), ResultQueued, IV)
		x.wantQueues("G[1:PR] C[] W[2:EX 3:PR]")
	})

	t.Run("new request waits behind a non-empty convert queue", func(t *testing.T) {
		x := newH(t)
		x.req(1, PR, 0)
		x.req(2, PR, 0)
		x.conv(2, EX, 0)
		wantResult(t, x.req(3, NL, 0), ResultQueued, IV)
		x.wantQueues("G[1:PR] C[2:PR>EX] W[3:NL]")
	})

	t.Run("conversions are granted before waiters", func(t *testing.T) {
		x := newH(t)
		x.req(1, EX, 0)
		x.req(2, NL, 0)
		x.conv(2, PR, 0)
		x.req(3, PR, 0)
		x.wantQueues("G[1:EX] C[2:NL>PR] W[3:PR]")
		x.unlock(1, 0)
		x.wantEvents("grant 2:PR, grant 3:PR")
	})

	t.Run("a compatible conversion is granted in place despite queues", func(t *testing.T) {
		x := newH(t)
		x.req(1, PR, 0)
		x.req(2, NL, 0)
		x.req(3, EX, 0) // waits
		wantResult(t, x.conv(2, CR, 0), ResultGranted, CR)
		x.wantQueues("G[1:PR 2:CR] C[] W[3:EX]")
	})

	t.Run("QUECVT queues a compatible conversion behind earlier ones", func(t *testing.T) {
		x := newH(t)
		x.req(1, PR, 0)
		x.req(2, PR, 0)
		x.req(3, NL, 0)
		x.conv(2, EX, 0) // blocked by 1
		wantResult(t, x.conv(3, CR, QueCvt), ResultQueued, NL)
		x.wantQueues("G[1:PR] C[2:PR>EX 3:NL>CR] W[]")
	})

	t.Run("QUECVT is granted at once when nothing converts", func(t *testing.T) {
		x := newH(t)
		x.req(1, PR, 0)
		x.req(2, NL, 0)
		wantResult(t, x.conv(2, PR, QueCvt), ResultGranted, PR)
	})

	t.Run("queued conversions are granted in order", func(t *testing.T) {
		x := newH(t)
		x.req(1, EX, 0)
		x.req(2, NL, 0)
		x.req(3, NL, 0)
		x.conv(2, PR, 0)
		x.conv(3, PW, 0)
		x.wantQueues("G[1:EX] C[2:NL>PR 3:NL>PW] W[]")
		x.unlock(1, 0)
		// 2 first; then 3 conflicts with 2's PR and waits
		x.wantEvents("grant 2:PR, bast 2:PW")
	})

	t.Run("HEADQUE puts a request at the head of the wait queue", func(t *testing.T) {
		x := newH(t)
		x.req(1, EX, 0)
		x.req(2, PR, 0)
		x.req(3, CR, HeadQue)
		x.wantQueues("G[1:EX] C[] W[3:CR 2:PR]")
		x.unlock(1, 0)
		x.wantEvents("grant 3:CR, grant 2:PR")
	})

	t.Run("HEADQUE puts a conversion at the head of the convert queue", func(t *testing.T) {
		x := newH(t)
		x.req(1, EX, 0)
		x.req(2, NL, 0)
		x.req(3, NL, 0)
		x.conv(2, PR, 0)
		x.conv(3, CW, HeadQue)
		x.wantQueues("G[1:EX] C[3:NL>CW 2:NL>PR] W[]")
		x.unlock(1, 0)
		x.wantEvents("grant 3:CW, bast 3:PR")
	})

	t.Run("NOORDER is granted as soon as compatible", func(t *testing.T) {
		x := newH(t)
		x.req(1, PR, 0)
		x.req(2, EX, 0)
		wantResult(t, x.req(3, PR, NoOrder), ResultGranted, PR)
		x.wantQueues("G[1:PR 3:PR] C[] W[2:EX]")
	})

	t.Run("NOORDER on a queued request passes the queue on the next scan", func(t *testing.T) {
		x := newH(t)
		x.req(1, PW, 0)
		x.req(2, EX, 0)
		x.req(3, PR, NoOrder) // blocked by PW
		x.wantQueues("G[1:PW] C[] W[2:EX 3:PR]")
		x.conv(1, CR, 0)
		// 2 still blocks, but 3 passes it; both holders then block 2 (1's
		// BAST record was reset by its conversion)
		x.wantEvents("grant 3:PR, bast 3:EX, bast 1:EX")
		x.wantQueues("G[3:PR 1:CR] C[] W[2:EX]")
	})

	t.Run("EXPEDITE grants a new NL request ignoring the queues", func(t *testing.T) {
		x := newH(t)
		x.req(1, EX, 0)
		x.req(2, PR, 0)
		wantResult(t, x.req(3, NL, 0), ResultQueued, IV)
		wantResult(t, x.req(4, NL, Expedite), ResultGranted, NL)
	})

	t.Run("ALTPR grants PR when the requested mode is blocked", func(t *testing.T) {
		x := newH(t)
		x.req(1, PR, 0)
		rep := x.req(2, EX, AltPR)
		wantResult(t, rep, ResultGranted, PR)
		if rep.SB&AltMode == 0 {
			t.Fatalf("SB = %v, want ALTMODE", rep.SB)
		}
	})

	t.Run("ALTCW grants CW when the requested mode is blocked", func(t *testing.T) {
		x := newH(t)
		x.req(1, CW, 0)
		rep := x.req(2, PR, AltCW)
		wantResult(t, rep, ResultGranted, CW)
		if rep.SB&AltMode == 0 {
			t.Fatalf("SB = %v, want ALTMODE", rep.SB)
		}
	})

	t.Run("ALTPR queues at the requested mode when PR is blocked too", func(t *testing.T) {
		x := newH(t)
		x.req(1, EX, 0)
		rep := x.req(2, PW, AltPR)
		wantResult(t, rep, ResultQueued, IV)
		x.unlock(1, 0)
		x.wantEvents("grant 2:PW")
	})

	t.Run("ALTPR on a queued request is granted PR on a later scan", func(t *testing.T) {
		x := newH(t)
		x.req(1, EX, 0)
		x.req(2, PR, 0)
		x.req(3, EX, AltPR)
		x.unlock(1, 0)
		x.wantEvents("grant 2:PR, grant 3:PR")
		if st, _ := x.tab.Lock(res, lid(3)); st.SB&AltMode == 0 {
			t.Fatalf("lock 3 SB = %v, want ALTMODE", st.SB)
		}
	})

	t.Run("NOQUEUE fails instead of queueing and leaves nothing behind", func(t *testing.T) {
		x := newH(t)
		x.req(1, EX, 0)
		wantResult(t, x.req(2, PR, NoQueue), ResultWouldBlock, IV)
		x.wantEvents("")
		x.wantQueues("G[1:EX] C[] W[]")
		wantResult(t, x.conv(1, NL, 0), ResultGranted, NL)
		x.req(3, EX, 0)
		wantResult(t, x.conv(1, PR, NoQueue), ResultWouldBlock, NL)
		x.wantQueues("G[3:EX 1:NL] C[] W[]")
	})

	t.Run("down-conversion is granted at once and lets waiters in", func(t *testing.T) {
		x := newH(t)
		x.req(1, EX, 0)
		x.req(2, PR, 0)
		wantResult(t, x.conv(1, PR, 0), ResultGranted, PR)
		x.wantEvents("grant 2:PR")
	})

	t.Run("cancel reverts a conversion and removes a waiting request", func(t *testing.T) {
		x := newH(t)
		x.req(1, EX, 0)
		x.req(2, NL, 0)
		x.conv(2, PR, 0)
		x.req(3, PR, 0)
		wantResult(t, x.cancel(2), ResultCancelled, NL)
		x.wantQueues("G[1:EX 2:NL] C[] W[3:PR]")
		wantResult(t, x.cancel(3), ResultCancelled, IV)
		x.wantQueues("G[1:EX 2:NL] C[] W[]")
		wantResult(t, x.cancel(1), ResultNothingToCancel, EX)
		wantResult(t, x.cancel(3), ResultNothingToCancel, IV)
	})

	t.Run("cancelling the head of the wait queue lets the next one in", func(t *testing.T) {
		x := newH(t)
		x.req(1, PR, 0)
		x.req(2, EX, 0)
		x.req(3, PR, 0)
		x.cancel(2)
		x.wantEvents("grant 3:PR")
	})

	t.Run("unlock without FORCEUNLOCK needs a granted lock", func(t *testing.T) {
		x := newH(t)
		x.req(1, EX, 0)
		x.req(2, EX, 0)
		if _, _, err := x.tab.Unlock(res, lid(2), 0, nil); err == nil {
			t.Fatal("unlock of a waiting lock succeeded")
		}
		wantResult(t, x.unlock(2, ForceUnlock), ResultUnlocked, IV)
		x.wantQueues("G[1:EX] C[] W[]")
		if _, _, err := x.tab.Convert(res, lid(9), EX, 0, nil); err == nil {
			t.Fatal("convert of an unknown lock succeeded")
		}
	})

	t.Run("convert of a lock that is not granted is busy", func(t *testing.T) {
		x := newH(t)
		x.req(1, EX, 0)
		x.req(2, EX, 0)
		if _, _, err := x.tab.Convert(res, lid(2), PR, 0, nil); err == nil {
			t.Fatal("convert of a waiting lock succeeded")
		}
	})

	t.Run("recovery regrants conversions without regard to order", func(t *testing.T) {
		// Old master held EX; survivors report NL->EX then PR->EX, an
		// in-place conversion deadlock that only the recovery rule breaks.
		tab := New(32)
		add := func(id uint32, gr, rq Mode) {
			t.Helper()
			if err := tab.AddRecovered(res, RecoveredLock{ID: lid(id), GrMode: gr, RqMode: rq, Status: StatusConverting}); err != nil {
				t.Fatal(err)
			}
		}
		add(1, NL, EX)
		add(2, PR, EX)
		tab.FinishRecovery()
		var got []Event
		tab.GrantRecovered(func(_ string, ev []Event) { got = append(got, ev...) })
		x := &h{t: t, tab: tab, ev: got}
		// the first lock cannot be granted while 2 holds PR; the second can
		// once the order is ignored
		x.wantEvents("grant 2:EX")
	})
}
