package health

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/lvs/model"
)

var t0 = time.Unix(1_700_000_000, 0)

var errRefused = errors.New("connection refused")

// run drives one target with a script of outcomes ('+' success, '-' failure,
// 't' no answer) at one check per interval and returns the state after each.
func run(t *testing.T, cfg Config, script string) string {
	t.Helper()
	tr := NewTracker()
	if err := tr.Add("rs", cfg, t0); err != nil {
		t.Fatal(err)
	}
	now := t0
	var out strings.Builder
	for _, c := range script {
		starts, _ := tr.Tick(now)
		if len(starts) != 1 {
			t.Fatalf("at %v: %d checks started, want 1", now.Sub(t0), len(starts))
		}
		switch c {
		case '+':
			tr.Result("rs", starts[0].Seq, nil, now)
		case '-':
			tr.Result("rs", starts[0].Seq, errRefused, now)
		case 't':
			tr.Tick(starts[0].Deadline) // nothing came back
		}
		st, _ := tr.Status("rs")
		out.WriteString(map[State]string{Up: "U", Down: "D"}[st.State])
		now = now.Add(cfg.Interval)
	}
	return out.String()
}

func TestRiseFall(t *testing.T) {
	cfg := Config{Interval: time.Second, Timeout: time.Second, Rise: 2, Fall: 3}
	cases := []struct{ script, want string }{
		{"+++", "UUU"},
		{"--+--", "UUUUU"},     // fall counts consecutive failures only
		{"---", "UUD"},         // the third failure takes it down
		{"--t", "UUD"},         // a timeout is a failure
		{"---+-++", "UUDDDDU"}, // rise needs 2 consecutive successes
		{"---++---", "UUDDUUUD"},
	}
	for _, c := range cases {
		if got := run(t, cfg, c.script); got != c.want {
			t.Errorf("rise 2 fall 3, %s: %s, want %s", c.script, got, c.want)
		}
	}
	down := cfg
	down.InitiallyDown = true
	if got := run(t, down, "+-++"); got != "DDDU" {
		t.Errorf("initially down: %s", got)
	}
}

func TestLateAndStaleResultsAreIgnored(t *testing.T) {
	cfg := Config{Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 1, Fall: 1}
	tr := NewTracker()
	tr.Add("rs", cfg, t0)
	starts, _ := tr.Tick(t0)
	_, trans := tr.Tick(t0.Add(500 * time.Millisecond))
	if len(trans) != 1 || trans[0].To != Down || !strings.Contains(trans[0].Reason, "timed out") {
		t.Fatalf("timeout with fall 1: %+v", trans)
	}
	// The probe finally answers: too late, ignored.
	if _, changed, err := tr.Result("rs", starts[0].Seq, nil, t0.Add(600*time.Millisecond)); changed || err != nil {
		t.Fatalf("late result changed state (%v, %v)", changed, err)
	}
	if _, _, err := tr.Result("gone", 1, nil, t0); !errors.Is(err, ErrUnknownTarget) {
		t.Fatalf("unknown target: %v", err)
	}
}

func TestChecksStartEveryInterval(t *testing.T) {
	cfg := Config{Interval: 2 * time.Second, Timeout: time.Second, Rise: 1, Fall: 1}
	tr := NewTracker()
	tr.Add("a", cfg, t0)
	tr.Add("b", Config{Interval: 3 * time.Second, Timeout: time.Second, Rise: 1, Fall: 1}, t0)
	var log []string
	now := t0
	for range 20 {
		starts, _ := tr.Tick(now)
		for _, s := range starts {
			log = append(log, fmt.Sprintf("%s@%d", s.ID, now.Sub(t0)/time.Second))
			tr.Result(s.ID, s.Seq, nil, now)
		}
		next, ok := tr.NextWake()
		if !ok {
			t.Fatal("nothing to wake for")
		}
		now = next
	}
	got := strings.Join(log[:8], " ")
	if want := "a@0 b@0 a@2 b@3 a@4 a@6 b@6 a@8"; got != want {
		t.Fatalf("schedule %s, want %s", got, want)
	}
}

// The behavioural bound the integration test relies on: a server that stops
// answering at any moment is Down no later than Fall*Interval + Timeout
// afterwards. Simulated over random stop times and check durations.
func TestDownWithinFallTimesInterval(t *testing.T) {
	r := testenv.Rand(t)
	for range 300 {
		cfg := Config{
			Interval: time.Duration(1+r.IntN(10)) * 100 * time.Millisecond,
			Rise:     1 + r.IntN(3),
			Fall:     1 + r.IntN(4),
		}
		cfg.Timeout = time.Duration(1+r.IntN(int(cfg.Interval/time.Millisecond))) * time.Millisecond
		stop := t0.Add(time.Duration(r.IntN(5000)) * time.Millisecond)
		tr := NewTracker()
		tr.Add("rs", cfg, t0)
		now := t0
		var downAt time.Time
		for downAt.IsZero() {
			starts, trans := tr.Tick(now)
			for _, tr := range trans {
				if tr.To == Down {
					downAt = tr.At
				}
			}
			for _, s := range starts {
				if now.Before(stop) {
					tr.Result(s.ID, s.Seq, nil, now.Add(time.Duration(r.Int64N(int64(cfg.Timeout)))))
					continue
				}
				// A dead server either refuses at once or never answers.
				if r.IntN(2) == 0 {
					if trn, ok, _ := tr.Result(s.ID, s.Seq, errRefused, now); ok && trn.To == Down {
						downAt = trn.At
					}
				}
			}
			next, _ := tr.NextWake()
			now = next
		}
		bound := time.Duration(cfg.Fall)*cfg.Interval + cfg.Timeout
		if downAt.Sub(stop) > bound {
			t.Fatalf("%+v: down %v after the stop, bound %v", cfg, downAt.Sub(stop), bound)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	bad := Config{Interval: time.Second, Timeout: 2 * time.Second}
	err := bad.Validate()
	for _, want := range []string{"timeout", "rise", "fall"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%+v) = %v, want mention of %s", bad, err, want)
		}
	}
	if err := NewTracker().Add("x", bad, t0); err == nil {
		t.Fatal("Add accepted a bad config")
	}
}

func TestEffective(t *testing.T) {
	a, b := netip.MustParseAddrPort("10.0.1.1:80"), netip.MustParseAddrPort("10.0.1.2:80")
	sorryAddr := netip.MustParseAddrPort("10.0.9.9:80")
	base := model.Service{Scheduler: model.WRR, RealServers: []model.RealServer{
		{Addr: b, Weight: 2, Forward: model.NAT}, {Addr: a, Weight: 3, Forward: model.NAT},
	}}
	sorry := &model.RealServer{Addr: sorryAddr, Forward: model.NAT}
	states := func(m map[netip.AddrPort]State) func(netip.AddrPort) (State, bool) {
		return func(x netip.AddrPort) (State, bool) { s, ok := m[x]; return s, ok }
	}
	desc := func(s model.Service) string {
		var parts []string
		for _, r := range s.RealServers {
			parts = append(parts, fmt.Sprintf("%s=%d", r.Addr, r.Weight))
		}
		return strings.Join(parts, " ")
	}
	cases := []struct {
		name string
		p    Policy
		st   map[netip.AddrPort]State
		want string
	}{
		{"all up", Policy{OnFailure: Quiesce, Sorry: sorry}, map[netip.AddrPort]State{a: Up, b: Up}, "10.0.1.1:80=3 10.0.1.2:80=2"},
		{"unchecked servers count as up", Policy{OnFailure: Quiesce}, nil, "10.0.1.1:80=3 10.0.1.2:80=2"},
		{"quiesce", Policy{OnFailure: Quiesce}, map[netip.AddrPort]State{a: Down, b: Up}, "10.0.1.1:80=0 10.0.1.2:80=2"},
		{"remove", Policy{OnFailure: Remove}, map[netip.AddrPort]State{a: Down, b: Up}, "10.0.1.2:80=2"},
		{"all down, sorry", Policy{OnFailure: Quiesce, Sorry: sorry}, map[netip.AddrPort]State{a: Down, b: Down}, "10.0.1.1:80=0 10.0.1.2:80=0 10.0.9.9:80=1"},
		{"all down, removed, sorry", Policy{OnFailure: Remove, Sorry: sorry}, map[netip.AddrPort]State{a: Down, b: Down}, "10.0.9.9:80=1"},
		{"all down, no sorry", Policy{OnFailure: Remove}, map[netip.AddrPort]State{a: Down, b: Down}, ""},
	}
	for _, c := range cases {
		got := Effective(base, c.p, states(c.st))
		if d := desc(got); d != c.want {
			t.Errorf("%s: %s, want %s", c.name, d, c.want)
		}
	}
	// Administratively drained servers (weight 0) do not count as serving.
	drained := base.Clone()
	drained.RealServers[0].Weight, drained.RealServers[1].Weight = 0, 0
	if d := desc(Effective(drained, Policy{OnFailure: Quiesce, Sorry: sorry}, states(nil))); !strings.Contains(d, "10.0.9.9:80=1") {
		t.Errorf("drained pool without the sorry server: %s", d)
	}
	if base.RealServers[0].Addr != b {
		t.Error("Effective modified its input")
	}
}
