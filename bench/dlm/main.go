package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/replicad/replicad/dlm"
	"github.com/replicad/replicad/dlm/locktable"
)

// Goals of issue 4.
const (
	goalLocalOps    = 500_000                // lock+unlock pairs per second
	goalAcquireRTTs = 2                      // round trips ...
	goalAcquireSlop = 50 * time.Microsecond  // ... plus this
	goalRecovery    = 2 * time.Second        // from the fence confirmation
	lockspaceName   = "bench"                // the lockspace of the local, remote and ping-pong measurements
	settle          = 200 * time.Millisecond // pause after a cluster forms
)

type options struct {
	rounds         int
	duration       time.Duration
	samples        int
	inflight       int
	hops           int
	locks          int
	recoveryRounds int
	only           map[string]bool
	timing         timing
	verbose        bool
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 5, "rounds of the local, remote and ping-pong measurements")
	flag.DurationVar(&o.duration, "duration", 2*time.Second, "length of each local and ping-pong round")
	flag.IntVar(&o.samples, "samples", 2000, "remote acquires (and TCP round trips) per case and round")
	flag.IntVar(&o.hops, "hops", 2000, "remote acquires per case timed socket event by socket event (0: none)")
	flag.IntVar(&o.inflight, "inflight", 64, "lock+unlock chains in flight in the asynchronous local measurement")
	flag.IntVar(&o.locks, "locks", 100_000, "locks in the recovery measurement")
	flag.IntVar(&o.recoveryRounds, "recovery-rounds", 3, "recovery rounds (a new three-node cluster each)")
	only := flag.String("only", "local,remote,pingpong,recovery", "measurements to run, comma-separated")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.BoolVar(&o.verbose, "v", false, "log the DLM nodes to stderr")
	flag.Parse()
	o.only = map[string]bool{}
	for _, m := range strings.Split(*only, ",") {
		switch m = strings.TrimSpace(m); m {
		case "local", "remote", "pingpong", "recovery":
			o.only[m] = true
		default:
			fmt.Fprintf(os.Stderr, "dlm-bench: -only: unknown measurement %q (local, remote, pingpong, recovery)\n", m)
			os.Exit(2)
		}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dlm-bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "dlm-bench:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := run(os.Stdout, o); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "dlm-bench:", err)
		os.Exit(1)
	}
}

// results are every round's figures.
type results struct {
	localSync, localAsync []float64
	rtt                   []time.Duration // median per round
	lookup, cached        acquireRounds
	handovers             []float64
	recovery              []recoveryResult
	frameSize             int
}

type acquireRounds struct {
	med, p99 []time.Duration
	ratio    []float64 // median / that round's RTT median
}

func (a *acquireRounds) add(s []time.Duration, rtt time.Duration) {
	m := median(s)
	a.med = append(a.med, m)
	a.p99 = append(a.p99, percentile(s, 99))
	a.ratio = append(a.ratio, float64(m)/float64(rtt))
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func run(w io.Writer, o options) error {
	log := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	log("dlm-bench: %d rounds of %s, %d remote samples per case and round, %d recovery rounds of %d locks; GOMAXPROCS %d, %d CPUs, load average %s\n",
		o.rounds, o.duration, o.samples, o.recoveryRounds, o.locks, runtime.GOMAXPROCS(0), runtime.NumCPU(), loadavg())
	var res results

	// local: a single-node lockspace
	var local *dlm.Lockspace
	if o.only["local"] {
		c, lss, err := startJoined(1, o.timing, o.verbose, nil, lockspaceName)
		if err != nil {
			return err
		}
		defer c.close()
		local = lss[1]
	}
	// remote and ping-pong: two nodes
	var pair map[dlm.NodeID]*dlm.Lockspace
	var probe *rttProbe
	lookupName := nameWithDir("acquire-lookup", 0, 2) // directory: node 1, the master
	cachedName := "acquire-cached"
	if o.only["remote"] || o.only["pingpong"] {
		c, lss, err := startJoined(2, o.timing, o.verbose, nil, lockspaceName)
		if err != nil {
			return err
		}
		defer c.close()
		pair = lss
	}
	if o.only["remote"] {
		ctx := context.Background()
		// node 1 masters both resources and keeps them with NL locks;
		// node 2 keeps an NL lock on the cached one, so it knows its master
		for _, name := range []string{lookupName, cachedName} {
			if _, _, err := pair[1].Lock(ctx, dlm.Request{Name: name, Mode: locktable.NL}); err != nil {
				return err
			}
		}
		if _, _, err := pair[2].Lock(ctx, dlm.Request{Name: cachedName, Mode: locktable.NL}); err != nil {
			return err
		}
		res.frameSize = requestFrameSize(lockspaceName, lookupName)
		var err error
		if probe, err = newRTTProbe(res.frameSize); err != nil {
			return err
		}
		defer probe.close()
		// warm up both paths
		if _, err := probe.sample(200); err != nil {
			return err
		}
		if _, err := remoteAcquire(pair[2], lookupName, 200); err != nil {
			return err
		}
	}
	time.Sleep(settle)

	rounds := o.rounds
	if !o.only["local"] && !o.only["remote"] && !o.only["pingpong"] {
		rounds = 0
	}
	for r := range rounds {
		line := fmt.Sprintf("round %d:", r+1)
		if o.only["local"] {
			ops, err := localSync(local, "local", o.duration)
			if err != nil {
				return err
			}
			res.localSync = append(res.localSync, ops)
			async, err := localAsync(local, "async", o.inflight, o.duration)
			if err != nil {
				return err
			}
			res.localAsync = append(res.localAsync, async)
			line += fmt.Sprintf(" local %.0f pairs/s sync, %.0f async;", ops, async)
		}
		if o.only["remote"] {
			var rtt, lookup, cached []time.Duration
			steps := []func() error{
				func() (err error) { rtt, err = probe.sample(o.samples); return },
				func() (err error) { lookup, err = remoteAcquire(pair[2], lookupName, o.samples); return },
				func() (err error) { cached, err = remoteAcquire(pair[2], cachedName, o.samples); return },
			}
			for i := range steps { // rotate the order every round
				if err := steps[(i+r)%len(steps)](); err != nil {
					return err
				}
			}
			m := median(rtt)
			res.rtt = append(res.rtt, m)
			res.lookup.add(lookup, m)
			res.cached.add(cached, m)
			line += fmt.Sprintf(" RTT %s; acquire with lookup %s (%.2f RTT) p99 %s, master known %s (%.2f RTT) p99 %s;",
				us(m), us(median(lookup)), float64(median(lookup))/float64(m), us(percentile(lookup, 99)),
				us(median(cached)), float64(median(cached))/float64(m), us(percentile(cached, 99)))
		}
		if o.only["pingpong"] {
			n, elapsed, err := pingPong([]*dlm.Lockspace{pair[1], pair[2]}, fmt.Sprintf("pingpong-%d", r), o.duration)
			if err != nil {
				return err
			}
			hps := float64(n) / elapsed.Seconds()
			res.handovers = append(res.handovers, hps)
			line += fmt.Sprintf(" ping-pong %.0f handovers/s", hps)
		}
		log("%s\n", strings.TrimSuffix(line, ";"))
	}

	if o.only["remote"] && o.hops > 0 {
		if err := hops(w, o); err != nil {
			return err
		}
	}

	if o.only["recovery"] {
		for r := range o.recoveryRounds {
			log("recovery round %d: three nodes, node 1 dies\n", r+1)
			rr, err := recovery(o.locks, o.timing, o.verbose, log)
			if err != nil {
				return fmt.Errorf("recovery round %d: %w", r+1, err)
			}
			res.recovery = append(res.recovery, rr)
			log("  node 1 held %d locks and mastered %d resources; failure noticed (both survivors wait for fencing) %.2fs after it died\n",
				rr.victimLocks, rr.victimMastered, rr.detect.Seconds())
			log("  from the fence confirmation (ConfirmFenced on node 2 took %s): running on node 2 %s, node 3 %s; node 2's waiter granted %s; node 3's new lock granted %s; all %s\n",
				ms(rr.confirm), ms(rr.running[0]), ms(rr.running[1]), ms(rr.waiterGranted), ms(rr.freshGranted), ms(rr.total))
			log("  afterwards: survivors hold %d + %d locks, master %d resources\n", rr.survivorLocks[0], rr.survivorLocks[1], rr.mastered)
			runtime.GC()
		}
	}
	log("load average at the end: %s\n\n", loadavg())
	printTable(w, o, &res)
	return nil
}

func us(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond)) }
func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond)) }

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func printTable(w io.Writer, o options, res *results) {
	row := func(what, value, rounds, goal string) {
		fmt.Fprintf(w, "%-44s %14s  %-22s %s\n", what, value, goal, rounds)
	}
	row("measurement", "median", "every round", "goal")
	join := func(n int, f func(i int) string) string {
		var s []string
		for i := range n {
			s = append(s, f(i))
		}
		return "(" + strings.Join(s, " ") + ")"
	}
	if o.only["local"] {
		for _, x := range []struct {
			what string
			v    []float64
		}{{"local lock+unlock pairs/s, sync", res.localSync}, {fmt.Sprintf("local lock+unlock pairs/s, %d async", o.inflight), res.localAsync}} {
			m := median(x.v)
			row(x.what, fmt.Sprintf("%.0f", m), join(len(x.v), func(i int) string { return fmt.Sprintf("%.0f", x.v[i]) }),
				fmt.Sprintf(">= %d: %s", goalLocalOps, met(m >= goalLocalOps)))
		}
	}
	if o.only["remote"] {
		rtt := median(res.rtt)
		limit := goalAcquireRTTs*rtt + goalAcquireSlop
		row(fmt.Sprintf("loopback TCP RTT (%d B frames)", res.frameSize), us(rtt), join(len(res.rtt), func(i int) string { return us(res.rtt[i]) }), "")
		for _, x := range []struct {
			what string
			a    *acquireRounds
		}{{"remote acquire, lookup + request", &res.lookup}, {"remote acquire, master known", &res.cached}} {
			m, p := median(x.a.med), median(x.a.p99)
			row(x.what+", median", fmt.Sprintf("%s %.2f RTT", us(m), median(x.a.ratio)),
				join(len(x.a.med), func(i int) string { return us(x.a.med[i]) }), fmt.Sprintf("<= %s: %s", us(limit), met(m <= limit)))
			row(x.what+", p99", us(p), join(len(x.a.p99), func(i int) string { return us(x.a.p99[i]) }), fmt.Sprintf("<= %s: %s", us(limit), met(p <= limit)))
		}
	}
	if o.only["pingpong"] {
		m := median(res.handovers)
		row("two-node EX ping-pong, handovers/s", fmt.Sprintf("%.0f", m), join(len(res.handovers), func(i int) string { return fmt.Sprintf("%.0f", res.handovers[i]) }), "")
		if len(res.rtt) > 0 {
			row("  time per handover", fmt.Sprintf("%s %.2f RTT", us(time.Duration(float64(time.Second)/m)), float64(time.Second)/m/float64(median(res.rtt))), "", "")
		}
	}
	if o.only["recovery"] && len(res.recovery) > 0 {
		rec := res.recovery
		get := func(f func(r recoveryResult) time.Duration) []time.Duration {
			var v []time.Duration
			for _, r := range rec {
				v = append(v, f(r))
			}
			return v
		}
		for _, x := range []struct {
			what string
			f    func(r recoveryResult) time.Duration
			goal bool
		}{
			{fmt.Sprintf("recovery of %d locks: all done", o.locks), func(r recoveryResult) time.Duration { return r.total }, true},
			{"  survivors running (slower of two)", func(r recoveryResult) time.Duration { return max(r.running[0], r.running[1]) }, false},
			{"  waiter on the dead node's EX granted", func(r recoveryResult) time.Duration { return r.waiterGranted }, false},
			{"  new lock on a dead node's resource", func(r recoveryResult) time.Duration { return r.freshGranted }, false},
			{"  failure noticed (before the fence)", func(r recoveryResult) time.Duration { return r.detect }, false},
		} {
			v := get(x.f)
			goal := ""
			if x.goal {
				goal = fmt.Sprintf("<= %s: %s", ms(goalRecovery), met(median(v) <= goalRecovery))
			}
			row(x.what, ms(median(v)), join(len(v), func(i int) string { return ms(v[i]) }), goal)
		}
	}
}

// hops breaks remote acquires into socket events on a separate two-node
// cluster whose connections note every read and write.
func hops(w io.Writer, o options) error {
	h := &hopRecorder{}
	c, lss, err := startJoined(2, o.timing, o.verbose, h, lockspaceName)
	if err != nil {
		return err
	}
	defer c.close()
	ctx := context.Background()
	lookupName, cachedName := nameWithDir("hops-lookup", 0, 2), "hops-cached"
	for _, name := range []string{lookupName, cachedName} {
		if _, _, err := lss[1].Lock(ctx, dlm.Request{Name: name, Mode: locktable.NL}); err != nil {
			return err
		}
	}
	if _, _, err := lss[2].Lock(ctx, dlm.Request{Name: cachedName, Mode: locktable.NL}); err != nil {
		return err
	}
	fmt.Fprintf(w, "socket events of remote acquires (a separate pair of nodes whose connections time every read and write; a stall is a gap of %s or more between consecutive events):\n", us(stallGap))
	for _, x := range []struct{ what, name string }{{"lookup + request", lookupName}, {"master known", cachedName}} {
		if _, err := remoteAcquire(lss[2], x.name, 200); err != nil {
			return err
		}
		st, err := acquireHops(lss[2], h, x.name, o.hops)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  %-17s %d acquires, median %s, %.1f socket events each; %d (%.0f%%) with a stall (largest gap median %s): median %s; without: median %s\n",
			x.what, st.samples, us(st.all), st.events, st.stalled, 100*float64(st.stalled)/float64(st.samples), us(st.gap), us(st.stalledAt), us(st.clean))
	}
	return nil
}
