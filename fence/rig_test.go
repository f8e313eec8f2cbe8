package fence

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/replicad/replicad/fence/fencetest"
	"github.com/replicad/replicad/internal/clock"
)

// rig builds a Fencer whose devices are script agents (real executables
// speaking the fence-agents protocol), one directory each.
type rig struct {
	t      *testing.T
	cfg    Config
	agents map[string]*fencetest.ScriptAgent
}

func newRig(t *testing.T) *rig {
	cfg := DefaultConfig()
	cfg.HistoryPath = filepath.Join(t.TempDir(), "fence", "history.log")
	return &rig{t: t, cfg: cfg, agents: map[string]*fencetest.ScriptAgent{}}
}

// device adds a script-agent device. Defaults are quick: no retry interval,
// 10ms between status checks, verification gives up after 1s.
func (r *rig) device(name string, hosts []string, hostMap []string, mod ...func(*DeviceConfig)) *fencetest.ScriptAgent {
	r.t.Helper()
	a, err := fencetest.NewScriptAgent(r.t.TempDir())
	if err != nil {
		r.t.Fatal(err)
	}
	d := DefaultDevice()
	d.Name, d.Command, d.Hosts, d.HostMap = name, a.Path, hosts, hostMap
	d.Timeout, d.RetryInterval, d.VerifyTimeout, d.VerifyInterval = 30*time.Second, 0, time.Second, 10*time.Millisecond
	for _, m := range mod {
		m(&d)
	}
	r.cfg.Devices = append(r.cfg.Devices, d)
	r.agents[name] = a
	return a
}

func (r *rig) start(opts Options) *Fencer {
	r.t.Helper()
	if opts.Rand == nil {
		opts.Rand = rand.New(rand.NewPCG(1, 2))
	}
	f, err := New(context.Background(), r.cfg, opts)
	if err != nil {
		r.t.Fatalf("New: %v", err)
	}
	r.t.Cleanup(func() { f.Close() })
	return f
}

func req(target string, a Action) Request {
	return Request{Target: target, Action: a, Origin: "test/" + target, Reason: "test fences " + target}
}

// waitFor polls cond (real time) until it holds; it synchronises with
// goroutines and processes, and is not a timing claim: the bound only
// turns a hang into a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitPending(t *testing.T, fc *clock.Fake, n int) {
	t.Helper()
	waitFor(t, "fake clock timers", func() bool { return fc.Pending() == n })
}

type fenceReturn struct {
	res Result
	err error
}

// fenceAsync runs Fence in a goroutine the test waits for.
func fenceAsync(t *testing.T, f *Fencer, r Request) <-chan fenceReturn {
	ch := make(chan fenceReturn, 1)
	go func() {
		res, err := f.Fence(context.Background(), r)
		ch <- fenceReturn{res, err}
	}()
	return ch
}

func recv(t *testing.T, ch <-chan fenceReturn) fenceReturn {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("Fence did not return")
	}
	return fenceReturn{}
}
