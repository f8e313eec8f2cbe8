package locktable

import "testing"

// Conversion deadlock, exhaustively over mode quadruples: lock 1 holds g1
// and waits to convert to r1 because lock 2's granted mode g2 blocks it;
// then lock 2 converts to r2. If r2 fits next to g1 it is granted in place;
// otherwise 2's granted mode blocks the conversion ahead of it and 2's own
// is blocked by 1: a conversion deadlock, handled per flag as the kernel
// does (EDEADLK, CONVDEADLK demotion, NODLCKWT queueing, NOQUEUE refusal).
func TestConversionDeadlockEveryModeUnderEachFlag(t *testing.T) {
	flagsCases := []Flags{0, ConvDeadlk, NoDlckWt, NoQueue}
	n := 0
	for _, g1 := range Modes {
		for _, g2 := range Modes {
			if !Compatible(g1, g2) {
				continue
			}
			for _, r1 := range Modes {
				if Compatible(g2, r1) {
					continue // 1 would be granted in place, no queue
				}
				for _, r2 := range Modes {
					for _, f := range flagsCases {
						n++
						x := newH(t)
						x.req(1, g1, 0)
						x.req(2, g2, 0)
						wantResult(t, x.conv(1, r1, 0), ResultQueued, g1)
						rep := x.conv(2, r2, f)
						name := g1.String() + ">" + r1.String() + " then " + g2.String() + ">" + r2.String() + " " + f.String()
						if Compatible(g1, r2) {
							if rep.Result != ResultGranted || rep.Mode != r2 {
								t.Errorf("%s: %v at %v, want granted in place", name, rep.Result, rep.Mode)
							}
							continue
						}
						switch f {
						case 0:
							if rep.Result != ResultDeadlock || rep.Mode != g2 {
								t.Errorf("%s: %v at %v, want deadlock at %v", name, rep.Result, rep.Mode, g2)
							}
							if st, _ := x.tab.Lock(res, lid(2)); st.Status != StatusGranted || st.GrMode != g2 {
								t.Errorf("%s: lock 2 left %v at %v, want granted %v", name, st.Status, st.GrMode, g2)
							}
						case ConvDeadlk:
							// demoted to NL, which lets 1 through; 2 then
							// waits unless r2 fits next to r1
							if rep.SB&Demoted == 0 {
								t.Errorf("%s: SB %v, want DEMOTED", name, rep.SB)
							}
							if st, _ := x.tab.Lock(res, lid(1)); st.Status != StatusGranted || st.GrMode != r1 {
								t.Errorf("%s: lock 1 %v at %v, want granted %v", name, st.Status, st.GrMode, r1)
							}
							if Compatible(r1, r2) {
								if rep.Result != ResultGranted || rep.Mode != r2 {
									t.Errorf("%s: %v at %v, want granted %v", name, rep.Result, rep.Mode, r2)
								}
							} else if rep.Result != ResultQueued || rep.Mode != NL {
								t.Errorf("%s: %v at %v, want queued at NL", name, rep.Result, rep.Mode)
							}
						case NoDlckWt:
							if rep.Result != ResultQueued || rep.Mode != g2 {
								t.Errorf("%s: %v at %v, want queued at %v", name, rep.Result, rep.Mode, g2)
							}
						case NoQueue:
							if rep.Result != ResultWouldBlock || rep.Mode != g2 {
								t.Errorf("%s: %v at %v, want would-block at %v", name, rep.Result, rep.Mode, g2)
							}
						}
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no cases")
	}
}

func TestConversionDeadlockNamedCases(t *testing.T) {
	t.Run("PR->EX twice: the second fails with EDEADLK and keeps PR", func(t *testing.T) {
		x := newH(t)
		x.req(1, PR, 0)
		x.req(2, PR, 0)
		x.conv(1, EX, 0)
		wantResult(t, x.conv(2, EX, 0), ResultDeadlock, PR)
		x.wantQueues("G[2:PR] C[1:PR>EX] W[]")
	})
	t.Run("NL->EX ahead of PR->EX", func(t *testing.T) {
		x := newH(t)
		x.req(1, NL, 0)
		x.req(2, PR, 0)
		x.req(3, PR, 0)
		x.conv(1, EX, 0)
		wantResult(t, x.conv(2, EX, 0), ResultDeadlock, PR)
		rep := x.conv(3, EX, ConvDeadlk)
		wantResult(t, rep, ResultQueued, NL)
		if rep.SB&Demoted == 0 {
			t.Fatalf("SB %v, want DEMOTED", rep.SB)
		}
	})
	t.Run("NODLCKWT queues, then the next grant pass BASTs the deadlocked lock", func(t *testing.T) {
		x := newH(t)
		x.req(1, CR, 0)
		x.req(2, PR, 0)
		x.req(3, NL, 0)
		x.conv(1, PW, 0)
		x.wantEvents("bast 2:PW")
		wantResult(t, x.conv(2, EX, NoDlckWt), ResultQueued, PR)
		x.wantQueues("G[3:NL] C[1:CR>PW 2:PR>EX] W[]")
		x.unlock(3, 0)
		x.wantEvents("bast 2:EX")
		// once per mode
		x.req(4, NL, 0)
		x.unlock(4, ForceUnlock)
		x.wantEvents("")
	})
}
