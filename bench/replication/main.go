package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/replicad/replicad/internal/bytesize"
)

// schedBatch runs every replicad under SCHED_BATCH (see doc.go).
var schedBatch = flag.Bool("sched-batch", false, "run every replicad (not fio) under the SCHED_BATCH policy: its wakeups do not preempt fio")

func main() {
	rounds := flag.Int("rounds", 3, "rounds of each measurement")
	runtime := flag.Duration("runtime", 10*time.Second, "length of each fio run (plus 2s ramp)")
	size := flag.String("size", "2GiB", "size of every volume")
	dir := flag.String("dir", "/var/tmp", "scratch directory for the volumes (about 5 × -size at most)")
	scattered := flag.Int("scattered", 256, "4 KiB blocks written while disconnected in the scattered resync")
	only := flag.String("only", "all", "fio, resync, pwrite or all")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "seed for the scattered blocks")
	pin := flag.Bool("pin", false, "one CPU per node, as on separate machines: the primary (or standalone node) and fio on CPU 0, the secondary on CPU 1")
	flag.Func("w", "only the workloads whose name holds this (\"4k\" or \"1M\")", func(v string) error {
		workloads = slices.DeleteFunc(workloads, func(w workload) bool { return !strings.Contains(w.name, v) })
		if len(workloads) == 0 {
			return fmt.Errorf("no workload matches %q", v)
		}
		return nil
	})
	profiles := flag.String("cpuprofile", "", "directory for a CPU profile of every replicad (written when the benchmark stops them)")
	flag.Parse()
	if err := run(*rounds, *runtime, *size, *dir, *scattered, *only, *seed, *pin, *profiles); err != nil {
		fmt.Fprintln(os.Stderr, "replication-bench:", err)
		os.Exit(1)
	}
}

func run(rounds int, runtime time.Duration, size, dir string, scattered int, only string, seed uint64, pin bool, profiles string) error {
	if only == "pwrite" || only == "all" {
		for _, h := range []pwriteHistory{evicted, writtenLarge, readFirst} {
			us, err := pwriteCost(dir, 200000, h)
			if err != nil {
				return err
			}
			fmt.Printf("# random 4 KiB buffered pwrite into a 1 GiB file in %s, %v: %.1f µs of CPU each\n", dir, h, us)
		}
		if only == "pwrite" {
			return nil
		}
	}
	fio, err := exec.LookPath("fio")
	if err != nil && only != "resync" {
		return fmt.Errorf("fio is missing (apt-get install fio)")
	}
	work, err := os.MkdirTemp(dir, "replicad-replbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	replicad := filepath.Join(work, "replicad")
	if out, err := exec.Command("go", "build", "-o", replicad, "github.com/replicad/replicad/cmd/replicad").CombinedOutput(); err != nil {
		return fmt.Errorf("go build replicad: %v\n%s", err, out)
	}

	var setups []*setup
	defer func() {
		for _, s := range setups {
			for _, n := range s.nodes {
				n.stop()
			}
		}
	}()
	for _, c := range []struct{ name, protocol string }{{"standalone", ""}, {"protocol C", "C"}, {"protocol A", "A"}} {
		if only == "resync" && c.protocol != "C" {
			continue
		}
		s, err := newSetup(work, strings.ReplaceAll(c.name, " ", "-"), c.protocol, size, pin)
		if err != nil {
			return err
		}
		s.name = c.name
		setups = append(setups, s)
		start := time.Now()
		if err := startSetup(s, replicad, profiles); err != nil {
			return err
		}
		fmt.Printf("# %s up in %.1fs (pids", c.name, time.Since(start).Seconds())
		for _, n := range s.nodes {
			fmt.Printf(" %d", n.cmd.Process.Pid)
		}
		fmt.Println(")")
	}

	if only != "resync" {
		for _, s := range setups {
			if err := fill(fio, s.primary().uri()); err != nil {
				return err
			}
			for _, n := range s.nodes {
				if err := writeBack(n.device, false); err != nil {
					return err
				}
			}
		}
		fmt.Printf("\n%-26s %12s %12s %12s %8s %8s\n", "workload", "standalone", "protocol C", "protocol A", "C/std", "A/std")
		for _, w := range workloads {
			results, cpu, fioCPU := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
			// replicad CPU per operation of the primary (or standalone
			// node) and of the secondary.
			cpuPrimary, cpuSecondary := map[string][]float64{}, map[string][]float64{}
			for r := 0; r < rounds; r++ {
				for i := range setups {
					s := setups[(i+r)%len(setups)]
					cpu0, err := s.cpuSeconds()
					if err != nil {
						return err
					}
					start := time.Now()
					v, fc, err := runFio(fio, s.primary(), w, runtime)
					if err != nil {
						return err
					}
					fioCPU[s.name] = append(fioCPU[s.name], fc)
					cpu1, err := s.cpuSeconds()
					if err != nil {
						return err
					}
					results[s.name] = append(results[s.name], v)
					// replicad CPU per operation (4k) or per MB (1M), all of
					// the setup's processes, over the whole fio run.
					per := func(i int) float64 { return 1e6 * (cpu1[i] - cpu0[i]) / time.Since(start).Seconds() / v }
					cpu[s.name] = append(cpu[s.name], 1e6*(sum(cpu1)-sum(cpu0))/time.Since(start).Seconds()/v)
					cpuPrimary[s.name] = append(cpuPrimary[s.name], per(0))
					if len(cpu1) > 1 {
						cpuSecondary[s.name] = append(cpuSecondary[s.name], per(1))
					}
				}
			}
			std, c, a := median(results["standalone"]), median(results["protocol C"]), median(results["protocol A"])
			fmt.Printf("%-26s %12.0f %12.0f %12.0f %7.2fx %7.2fx   (%s; rounds: std %v, C %v, A %v)\n",
				w.name, std, c, a, c/std, a/std, w.unit, rounded(results["standalone"]), rounded(results["protocol C"]), rounded(results["protocol A"]))
			per := "op"
			if w.unit == "MB/s" {
				per = "MB"
			}
			fmt.Printf("%-26s %12.0f %12.0f %12.0f %7.2fx %7.2fx   (replicad CPU µs per %s, all nodes)\n", "",
				median(cpu["standalone"]), median(cpu["protocol C"]), median(cpu["protocol A"]),
				median(cpu["protocol C"])/median(cpu["standalone"]), median(cpu["protocol A"])/median(cpu["standalone"]), per)
			// When fio and replicad saturate the CPUs, the rate is the
			// CPUs over the CPU time per operation, fio's included: the
			// ratio the CPU budget allows. With -pin each CPU is a machine
			// of its own: the busier of the primary's (with fio) and the
			// secondary's sets the rate.
			bound := func(name string) float64 {
				std := median(fioCPU["standalone"]) + median(cpu["standalone"])
				if pin {
					return std / max(median(fioCPU[name])+median(cpuPrimary[name]), median(cpuSecondary[name]))
				}
				return std / (median(fioCPU[name]) + median(cpu[name]))
			}
			fmt.Printf("%-26s %12s %5.0f / %-6.0f %5.0f / %-6.0f   (replicad CPU µs per %s: primary / secondary)\n", "", "",
				median(cpuPrimary["protocol C"]), median(cpuSecondary["protocol C"]), median(cpuPrimary["protocol A"]), median(cpuSecondary["protocol A"]), per)
			fmt.Printf("%-26s %12.0f %12.0f %12.0f %7.2fx %7.2fx   (fio CPU µs per %s; the ratios: what the CPU time per %s allows, fio's included)\n", "",
				median(fioCPU["standalone"]), median(fioCPU["protocol C"]), median(fioCPU["protocol A"]), bound("protocol C"), bound("protocol A"), per, per)
		}
	}
	if only == "fio" {
		return nil
	}

	var pair *setup
	for _, s := range setups {
		if s.name == "protocol C" {
			pair = s
		}
	}
	v, err := pair.primary().volume()
	if err != nil {
		return err
	}
	// Both volumes are in the page cache, as the TCP probe sends from and
	// to memory: what is compared is the protocol, not the disk.
	for _, n := range pair.nodes {
		if err := warmCache(n.device); err != nil {
			return err
		}
	}
	fmt.Printf("\nfull resync of %s (protocol C pair) vs one loopback TCP stream\n", bytesize.Format(v.Size))
	var tcp, rs, rsDurable, rsTotal, bound []float64
	for r := 0; r < rounds; r++ {
		tcpCPU0 := selfCPU()
		t, err := tcpProbe(v.Size, pin)
		if err != nil {
			return err
		}
		tcpCPU := selfCPU() - tcpCPU0
		cpu0, err := pair.cpuSeconds()
		if err != nil {
			return err
		}
		res, err := fullResync(pair)
		if err != nil {
			return err
		}
		cpu1, err := pair.cpuSeconds()
		if err != nil {
			return err
		}
		mbps, mbpsDurable, mbpsTotal := float64(res.sent)/res.resync.Seconds()/1e6, float64(res.sent)/res.durable.Seconds()/1e6, float64(v.Size)/res.total.Seconds()/1e6
		tcp, rs, rsDurable, rsTotal = append(tcp, t), append(rs, mbps), append(rsDurable, mbpsDurable), append(rsTotal, mbpsTotal)
		// Both saturate the CPUs: the ratio their CPU time per byte allows.
		b := (tcpCPU / float64(v.Size)) / ((sum(cpu1) - sum(cpu0)) / float64(res.sent))
		bound = append(bound, b)
		fmt.Printf("  round %d: TCP %.0f MB/s (%.1f CPU-seconds); resync %.0f MB/s (%s sent in %.2fs; durable on the target after %.2fs, %.0f MB/s; %.2fs and %.0f MB/s from new metadata to in sync; %.1f CPU-seconds in both nodes, source %.1f, target %.1f; CPU time per byte allows %.2fx)\n",
			r+1, t, tcpCPU, mbps, bytesize.Format(res.sent), res.resync.Seconds(), res.durable.Seconds(), mbpsDurable, res.total.Seconds(), mbpsTotal, sum(cpu1)-sum(cpu0), cpu1[0]-cpu0[0], cpu1[1]-cpu0[1], b)
	}
	fmt.Printf("  median: TCP %.0f MB/s, resync %.0f MB/s: %.2fx (durable on the target %.0f MB/s: %.2fx; end to end %.0f MB/s: %.2fx); the CPU time per byte allows %.2fx\n",
		median(tcp), median(rs), median(rs)/median(tcp), median(rsDurable), median(rsDurable)/median(tcp), median(rsTotal), median(rsTotal)/median(tcp), median(bound))

	dirty := int64(scattered) * 4096
	fmt.Printf("\nresync of %d scattered 4 KiB blocks (%s dirty) on %s (seed %d)\n", scattered, bytesize.Format(dirty), bytesize.Format(v.Size), seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var secs, resyncSecs, sentRatio []float64
	for r := 0; r < rounds; r++ {
		res, err := scatteredResync(pair, scattered, rng)
		if err != nil {
			return err
		}
		ratio := float64(res.sent) / float64(dirty)
		secs, resyncSecs, sentRatio = append(secs, res.total.Seconds()), append(resyncSecs, res.resync.Seconds()), append(sentRatio, ratio)
		fmt.Printf("  round %d: %d bytes sent for %d dirty (%.4fx); connect to in sync %.3fs, of which the resync (SyncSource to Established) %.3fs\n",
			r+1, res.sent, dirty, ratio, res.total.Seconds(), res.resync.Seconds())
	}
	fmt.Printf("  median: %.4fx of the dirty bytes sent; %.3fs from connect to in sync, %.3fs resyncing\n", median(sentRatio), median(secs), median(resyncSecs))
	return nil
}

func rounded(v []float64) []int {
	var out []int
	for _, x := range v {
		out = append(out, int(x+0.5))
	}
	return out
}
