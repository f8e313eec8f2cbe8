package locktable

import (
	"strings"
	"testing"
)

// The VMS matrix as printed in the kernel and in VAXcluster Principles:
// one row per held mode, "1" where the requested mode is compatible.
const matrixText = `
   NL CR CW PR PW EX
NL  1  1  1  1  1  1
CR  1  1  1  1  1  0
CW  1  1  1  0  0  0
PR  1  1  0  1  0  0
PW  1  1  0  0  0  0
EX  1  0  0  0  0  0`

func parseMatrix(t *testing.T, text string) map[[2]Mode]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(text), "\n")
	cols := strings.Fields(lines[0])
	out := map[[2]Mode]string{}
	for _, ln := range lines[1:] {
		f := strings.Fields(ln)
		row, err := ParseMode(f[0])
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range cols {
			col, err := ParseMode(c)
			if err != nil {
				t.Fatal(err)
			}
			out[[2]Mode{row, col}] = f[i+1]
		}
	}
	return out
}

func TestCompatibleEveryModePair(t *testing.T) {
	want := parseMatrix(t, matrixText)
	if len(want) != 36 {
		t.Fatalf("matrix has %d entries, want 36", len(want))
	}
	for _, a := range Modes {
		for _, b := range Modes {
			got := Compatible(a, b)
			if got != (want[[2]Mode{a, b}] == "1") {
				t.Errorf("Compatible(%v, %v) = %v, want %s", a, b, got, want[[2]Mode{a, b}])
			}
			if got != Compatible(b, a) {
				t.Errorf("matrix not symmetric at %v/%v", a, b)
			}
		}
		if !Compatible(IV, a) || !Compatible(a, IV) {
			t.Errorf("IV must be compatible with %v", a)
		}
	}
}

// Every mode pair through the table: a new request against a granted
// holder, and a conversion from NL against a granted holder, is granted iff
// the modes are compatible, else queued, else (NOQUEUE) refused.
func TestGrantEveryModePair(t *testing.T) {
	for _, held := range Modes {
		for _, rq := range Modes {
			ok := Compatible(held, rq)
			t.Run(held.String()+"/"+rq.String(), func(t *testing.T) {
				x := newH(t)
				wantResult(t, x.req(1, held, 0), ResultGranted, held)
				rep := x.req(2, rq, 0)
				if ok {
					wantResult(t, rep, ResultGranted, rq)
				} else {
					wantResult(t, rep, ResultQueued, IV)
				}
				z := newH(t)
				z.req(1, held, 0)
				rep = z.req(3, rq, NoQueue)
				if ok {
					wantResult(t, rep, ResultGranted, rq)
				} else {
					wantResult(t, rep, ResultWouldBlock, IV)
				}

				y := newH(t)
				y.req(1, held, 0)
				y.req(2, NL, 0)
				rep = y.conv(2, rq, 0)
				if ok {
					wantResult(t, rep, ResultGranted, rq)
				} else {
					wantResult(t, rep, ResultQueued, NL)
				}
				// releasing the holder grants whatever waited
				y.unlock(1, 0)
				if !ok {
					y.wantEvents("grant 2:" + rq.String())
				}
			})
		}
	}
}

func TestParseModeAndFlags(t *testing.T) {
	for _, m := range Modes {
		got, err := ParseMode(strings.ToLower(m.String()))
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseMode("XX"); err == nil {
		t.Error("ParseMode(XX) succeeded")
	}
	f, err := ParseFlags("noqueue|VALBLK,convert")
	if err != nil || f != NoQueue|ValBlk|Convert {
		t.Errorf("ParseFlags = %v, %v", f, err)
	}
	if f.String() != "NOQUEUE|CONVERT|VALBLK" {
		t.Errorf("Flags.String = %q", f.String())
	}
	if _, err := ParseFlags("BOGUS"); err == nil {
		t.Error("ParseFlags(BOGUS) succeeded")
	}
}

// The kernel's dlm_lock argument checks (set_lock_args, set_unlock_args).
func TestValidateLock(t *testing.T) {
	cases := []struct {
		mode  Mode
		flags Flags
		name  int
		ok    bool
	}{
		{EX, 0, 1, true},
		{EX, 0, 64, true},
		{EX, 0, 65, false},
		{EX, 0, 0, false},
		{EX, Convert, 0, true}, // the name is not needed for a conversion
		{Mode(6), 0, 1, false},
		{IV, 0, 1, false},
		{EX, QueCvt, 1, false},
		{EX, QueCvt | Convert, 1, true},
		{EX, ConvDeadlk, 1, false},
		{EX, ConvDeadlk | Convert | NoQueue, 1, false},
		{NL, Expedite, 1, true},
		{PR, Expedite, 1, false},
		{NL, Expedite | NoQueue, 1, false},
		{NL, Expedite | Convert, 1, false},
		{EX, Cancel, 1, false},
		{EX, ForceUnlock, 1, false},
		{EX, Orphan | Convert, 1, false},
	}
	for _, c := range cases {
		err := ValidateLock(c.mode, c.flags, c.name)
		if (err == nil) != c.ok {
			t.Errorf("ValidateLock(%v, %v, %d) = %v, want ok=%v", c.mode, c.flags, c.name, err, c.ok)
		}
	}
	for _, c := range []struct {
		f  Flags
		ok bool
	}{{0, true}, {Cancel, true}, {ValBlk | IVValBlk, true}, {ForceUnlock, true}, {Cancel | ForceUnlock, false}, {NoQueue, false}} {
		if err := ValidateUnlock(c.f); (err == nil) != c.ok {
			t.Errorf("ValidateUnlock(%v) = %v, want ok=%v", c.f, err, c.ok)
		}
	}
}

// QUECVT is allowed only on the conversions of the kernel's
// __quecvt_compat_matrix: the upward ones, counting both PR->CW and CW->PR.
func TestQuecvtPairs(t *testing.T) {
	allowed := map[[2]Mode]bool{}
	for _, p := range [][2]Mode{
		{NL, CR}, {NL, CW}, {NL, PR}, {NL, PW}, {NL, EX},
		{CR, CW}, {CR, PR}, {CR, PW}, {CR, EX},
		{CW, PR}, {CW, PW}, {CW, EX},
		{PR, CW}, {PR, PW}, {PR, EX},
		{PW, EX},
	} {
		allowed[p] = true
	}
	for _, g := range Modes {
		for _, r := range Modes {
			want := allowed[[2]Mode{g, r}]
			if QuecvtAllowed(g, r) != want {
				t.Errorf("QuecvtAllowed(%v, %v) = %v, want %v", g, r, !want, want)
			}
			x := newH(t)
			x.req(1, g, 0)
			_, _, err := x.tab.Convert(res, lid(1), r, QueCvt, nil)
			if (err == nil) != want {
				t.Errorf("Convert %v->%v with QUECVT: err %v, want allowed=%v", g, r, err, want)
			}
		}
	}
}
