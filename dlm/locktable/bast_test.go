package locktable

import "testing"

// BASTs go only to incompatible holders: every mode pair.
func TestBastOnlyToIncompatibleHolders(t *testing.T) {
	for _, held := range Modes {
		for _, rq := range Modes {
			x := newH(t)
			x.req(1, held, 0)
			x.req(2, rq, 0)
			want := ""
			if !Compatible(held, rq) {
				want = "bast 1:" + rq.String()
			}
			if got := x.events(); got != want {
				t.Errorf("holder %v, request %v: events %q, want %q", held, rq, got, want)
			}
			// a holder without a blocking callback gets none
			y := newH(t)
			y.reqB(1, held, 0, false)
			y.req(2, rq, 0)
			if got := y.events(); got != "" {
				t.Errorf("holder %v without bast, request %v: events %q", held, rq, got)
			}
		}
	}
}

func TestBastOncePerHigherMode(t *testing.T) {
	x := newH(t)
	x.req(1, EX, 0)
	x.req(2, CR, 0)
	x.wantEvents("bast 1:CR")
	x.req(3, CR, 0)
	x.wantEvents("") // already BASTed for CR
	x.req(4, PR, 0)
	x.wantEvents("bast 1:PR") // a higher mode
	x.req(5, CW, 0)
	x.wantEvents("") // CW < PR and EX vs CW is not the PR/CW case
	x.req(6, EX, 0)
	x.wantEvents("bast 1:EX")
	x.req(7, EX, 0)
	x.wantEvents("")
	// a grant resets the record: 1 down-converts to PW and is blocking
	// again; the grant pass lets the CRs in and BASTs every holder for the
	// highest waiting mode
	x.conv(1, PW, 0)
	x.wantEvents("grant 2:CR, grant 3:CR, bast 1:EX, bast 2:EX, bast 3:EX")
}

// PR and CW are incomparable: a PR holder is BASTed for a CW request even
// after a PW BAST, and the grant pass BASTs a PR holder for CW when a CW
// request waits behind a higher PR one.
func TestBastPRCWSpecialCase(t *testing.T) {
	x := newH(t)
	x.req(1, PR, 0)
	x.req(2, PW, 0)
	x.wantEvents("bast 1:PW")
	x.req(3, CW, 0)
	x.wantEvents("bast 1:CW")
	x.req(4, EX, 0)
	x.wantEvents("bast 1:EX")
	x.req(5, CW, 0)
	x.wantEvents("") // EX covers everything

	y := newH(t)
	y.req(1, CW, 0)
	y.req(2, PR, 0)
	y.wantEvents("bast 1:PR")

	// grant_pending_locks: highest blocked is PR with a CW waiter; PR
	// holders are told CW.
	z := newH(t)
	z.req(1, PR, 0)
	z.req(2, EX, 0) // waits; 1 BASTed for EX
	z.req(3, CW, 0) // waits
	z.req(9, PR, 0) // waits behind 2
	z.unlock(2, ForceUnlock)
	// 9 (PR) is granted? No: 3 (CW) is ahead and blocked by PR, so 9
	// waits too; high = PR, cw set: holder 1 (PR, BASTed for EX) gets
	// nothing more.
	z.wantEvents("")
	z.req(10, NL, 0)
	z.conv(1, NL, 0) // 1 drops to NL: 3 CW is granted, then 9 PR blocks on it
	z.wantEvents("grant 3:CW, bast 3:PR")
}

func TestNoQueueBast(t *testing.T) {
	x := newH(t)
	x.req(1, PR, 0)
	x.req(2, NL, 0)
	x.req(4, PR, 0)
	x.conv(4, EX, 0) // 4 converting, blocked by 1; 1 BASTed EX
	x.wantEvents("bast 1:EX")
	x.req(3, PW, NoQueue)
	x.wantEvents("") // a NOQUEUE miss sends nothing
	x.req(3, PW, NoQueue|NoQueueBast)
	// granted holders and converting locks incompatible with PW: 1 was
	// already BASTed for EX (>PW); 4 (converting at PR) is not yet
	x.wantEvents("bast 4:PW")
}

func TestCallbackFilter(t *testing.T) {
	type step struct {
		cast    bool
		mode    Mode
		deliver bool // for BASTs
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"a BAST before any completion is delivered", []step{{false, EX, true}}},
		{"a BAST compatible with the last granted mode is stale", []step{{true, PR, false}, {false, PR, false}, {false, CR, false}, {false, EX, true}}},
		{"a repeated BAST for the same mode is dropped", []step{{true, EX, false}, {false, PR, true}, {false, PR, false}}},
		{"a BAST weaker than a previous one above PR is dropped", []step{{true, EX, false}, {false, EX, true}, {false, PW, false}, {false, CR, false}}},
		{"CW after PR is delivered (PR/CW inversion)", []step{{true, EX, false}, {false, PR, true}, {false, CW, true}}},
		{"a completion in between re-arms BASTs", []step{{true, EX, false}, {false, PR, true}, {true, EX, false}, {false, PR, true}}},
		{"after a failed request (IV) every BAST is stale", []step{{true, IV, false}, {false, EX, false}}},
		{"NL never blocks anything", []step{{true, NL, false}, {false, EX, false}}},
	}
	for _, c := range cases {
		var f CallbackFilter
		for i, s := range c.steps {
			if s.cast {
				f.Cast(s.mode)
				continue
			}
			if got := f.Bast(s.mode); got != s.deliver {
				t.Errorf("%s: step %d BAST %v delivered=%v, want %v", c.name, i, s.mode, got, s.deliver)
			}
		}
	}
}
