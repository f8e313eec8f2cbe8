package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/nbd"
)

// workload is one fio job shape; the result is IOPS (4k) or MB/s (1M).
type workload struct {
	name, rw, bs string
	qd           int
	unit         string
}

var workloads = []workload{
	{"4k random write QD32", "randwrite", "4k", 32, "IOPS"},
	{"1M sequential write QD8", "write", "1M", 8, "MB/s"},
}

// span is the part of each volume fio writes: filled once before
// measuring, so that no setup measures first-touch allocation.
const span = "1G"

// fill writes the span once, sequentially, in 4 KiB writes: every node
// then holds the span in the page cache in 4 KiB folios (see
// pwriteHistory).
func fill(fio, uri string) error {
	out, err := exec.Command(fio, "--name=fill", "--ioengine=nbd", "--uri="+uri, "--rw=write", "--bs=4k",
		"--iodepth=32", "--size="+span, "--output=/dev/null").CombinedOutput()
	if err != nil {
		return fmt.Errorf("fio fill %s: %v: %s", uri, err, out)
	}
	return nil
}

// runFio runs one workload against uri and returns IOPS or MB/s.
// It returns the rate (IOPS or MB/s, as w.unit says) and fio's own CPU
// time in µs per operation or per MB.
func runFio(fio string, on *node, w workload, runtime time.Duration) (rate, cpu float64, err error) {
	uri := on.uri()
	out, err := pinned(on.cpu, fio, "--name=b", "--ioengine=nbd", "--uri="+uri, "--rw="+w.rw, "--bs="+w.bs,
		fmt.Sprintf("--iodepth=%d", w.qd), "--size="+span, "--time_based", fmt.Sprintf("--runtime=%d", int(runtime.Seconds())),
		"--ramp_time=2", "--output-format=json").Output()
	if err != nil {
		return 0, 0, fmt.Errorf("fio %s on %s: %v", w.name, uri, err)
	}
	var res struct {
		Jobs []struct {
			Write struct {
				IOPS    float64 `json:"iops"`
				BWBytes float64 `json:"bw_bytes"`
			} `json:"write"`
			Error int `json:"error"`
			// percent of one CPU over the measured run
			UsrCPU float64 `json:"usr_cpu"`
			SysCPU float64 `json:"sys_cpu"`
		} `json:"jobs"`
	}
	// fio's nbd engine prints "fio: connected to NBD server" first.
	if i := bytes.IndexByte(out, '{'); i > 0 {
		out = out[i:]
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Jobs) != 1 || res.Jobs[0].Error != 0 {
		return 0, 0, fmt.Errorf("fio %s on %s: bad output (%v): %.300s", w.name, uri, err, out)
	}
	j := res.Jobs[0]
	rate = j.Write.BWBytes / 1e6
	if w.unit == "IOPS" {
		rate = j.Write.IOPS
	}
	if rate > 0 {
		cpu = 1e6 * (j.UsrCPU + j.SysCPU) / 100 / rate
	}
	return rate, cpu, nil
}

// tcpProbe measures one loopback TCP stream: a writer sends total bytes
// in 256 KiB writes (the replication link's buffer size), a reader
// discards them. It returns MB/s. With pin, the writer runs on CPU 0 and
// the reader on CPU 1, as the resync's source and target do.
func tcpProbe(total int64, pin bool) (float64, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	got := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		if pin {
			unpin, err := pinThread(1)
			if err != nil {
				got <- err
				return
			}
			defer unpin()
		}
		_, err = io.CopyBuffer(io.Discard, c, make([]byte, 256<<10))
		got <- err
	}()
	if pin {
		unpin, err := pinThread(0)
		if err != nil {
			return 0, err
		}
		defer unpin()
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	for sent := int64(0); sent < total; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, err
		}
	}
	c.Close()
	if err := <-got; err != nil {
		return 0, err
	}
	return float64(total) / time.Since(start).Seconds() / 1e6, nil
}

// full is one full resync: the resync bytes the primary sent, the time
// from the new metadata to in sync, and the resync proper (SyncSource to
// Established on the primary).
type full struct {
	sent  int64
	total time.Duration
	resyncTimes
}

// fullResync makes the pair's secondary a fresh, empty replica (new
// metadata) and times the full sync from the primary.
func fullResync(s *setup) (res full, err error) {
	a, b := s.nodes[0], s.nodes[1]
	if err := b.do("POST", "/v1/volumes/"+volume+"/down", nil, nil); err != nil {
		return res, err
	}
	before, err := a.peer()
	if err != nil {
		return res, err
	}
	watch := watchReplication(a)
	start := time.Now()
	if err := b.createUp(true); err != nil {
		return res, err
	}
	after, err := a.waitSync(30 * time.Minute)
	if err != nil {
		return res, err
	}
	res.total = time.Since(start)
	if res.resyncTimes, err = watch(); err != nil {
		return res, err
	}
	if res.durable == 0 {
		return res, fmt.Errorf("%s: no peer disk UpToDate event after the resync", a.name)
	}
	res.sent = after.SentBytes["resync"] - before.SentBytes["resync"]
	return res, nil
}

// scattered is one scattered resync: the resync bytes the primary sent,
// the time from connect to in sync, and the part of it between the
// primary's SyncSource and Established events.
type scattered struct {
	sent  int64
	total time.Duration
	resyncTimes
}

// scatteredResync disconnects the primary, writes count random distinct
// 4 KiB blocks on it, reconnects and times the resync.
func scatteredResync(s *setup, count int, rng *rand.Rand) (res scattered, err error) {
	a := s.primary()
	if err := a.do("POST", "/v1/volumes/"+volume+"/disconnect", control.ConnectRequest{}, nil); err != nil {
		return res, err
	}
	ctx := context.Background()
	c, err := nbd.Dial(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", a.nbdPort), volume, nil)
	if err != nil {
		return res, err
	}
	defer c.Close()
	blocks := map[int64]bool{}
	buf := make([]byte, 4096)
	for len(blocks) < count {
		blk := rng.Int64N(c.Size() / 4096)
		if blocks[blk] {
			continue
		}
		blocks[blk] = true
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if err := c.WriteAt(ctx, buf, blk*4096, false); err != nil {
			return res, err
		}
	}
	if err := c.Flush(ctx); err != nil {
		return res, err
	}
	before, err := a.peer()
	if err != nil {
		return res, err
	}
	if want := int64(count) * 4096; before.OutOfSyncBytes != want {
		return res, fmt.Errorf("%d bytes out of sync after %d scattered writes, want %d", before.OutOfSyncBytes, count, want)
	}
	watch := watchReplication(a)
	start := time.Now()
	if err := a.do("POST", "/v1/volumes/"+volume+"/connect", control.ConnectRequest{}, nil); err != nil {
		return res, err
	}
	after, err := a.waitSync(5 * time.Minute)
	if err != nil {
		return res, err
	}
	res.total = time.Since(start)
	if res.resyncTimes, err = watch(); err != nil {
		return res, err
	}
	res.sent = after.SentBytes["resync"] - before.SentBytes["resync"]
	return res, nil
}

// resyncTimes are the phases of one resync seen from its source.
type resyncTimes struct {
	// resync is SyncSource to Established: every chunk sent and
	// acknowledged, the target's data in its page cache.
	resync time.Duration
	// durable is SyncSource to the peer's disk UpToDate: the target has
	// also flushed the data and adopted the source's generation.
	durable time.Duration
}

// watchReplication follows a node's events; the function it returns stops
// and gives the times from the node's SyncSource event to its Established
// event and to its peer's disk becoming UpToDate: the resync proper,
// without the reconnection before it.
func watchReplication(n *node) func() (resyncTimes, error) {
	ctx, stop := context.WithCancel(context.Background())
	var mu sync.Mutex
	times := map[string]time.Time{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.client().Stream(ctx, "/v1/events?volume="+volume, func(raw json.RawMessage) error {
			var e control.Event
			if json.Unmarshal(raw, &e) == nil && (e.What == "replication" || e.What == "peer-disk") {
				mu.Lock()
				times[e.What+" "+e.New] = e.Time
				mu.Unlock()
			}
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond) // let the stream subscribe
	return func() (resyncTimes, error) {
		time.Sleep(100 * time.Millisecond) // the last events
		stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		start, end, durable := times["replication SyncSource"], times["replication Established"], times["peer-disk UpToDate"]
		if start.IsZero() || end.IsZero() {
			return resyncTimes{}, fmt.Errorf("%s: no SyncSource and Established events: %v", n.name, times)
		}
		t := resyncTimes{resync: end.Sub(start)}
		if !durable.Before(end) {
			t.durable = durable.Sub(start)
		}
		return t, nil
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// pwriteHistory is how a file's pages came into the page cache before
// the 4 KiB writes pwriteCost times.
type pwriteHistory int

const (
	// written in 1 MiB writes, then dropped from the cache: each 4 KiB
	// write brings in a 4 KiB folio (the benchmark's volumes are filled
	// in 4 KiB writes into an empty cache, which leaves the same).
	evicted pwriteHistory = iota
	// written in 1 MiB writes and left cached: ext4 keeps them in large
	// folios, and a small write walks every block of its folio.
	writtenLarge
	// as writtenLarge after reading the whole file once (a resync source
	// does), so the folios are readahead's, larger still.
	readFirst
)

func (h pwriteHistory) String() string {
	return [...]string{"4 KiB folios (as the benchmark runs)", "1 MiB folios (written in 1 MiB writes)", "the file read through once first"}[h]
}

// pwriteCost returns the CPU time, in µs, of one random 4 KiB pwrite into
// a 1 GiB file in dir after history: the kernel work every node does for
// each 4k write it stores, which on ext4 depends on the size of the
// page-cache folio it lands in.
func pwriteCost(dir string, n int, history pwriteHistory) (float64, error) {
	f, err := os.CreateTemp(dir, "replicad-pwrite-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	const size = 1 << 30
	buf := make([]byte, 1<<20)
	if history == readFirst {
		if err := f.Truncate(size); err != nil {
			return 0, err
		}
		for off := int64(0); off < size; off += int64(len(buf)) {
			if _, err := f.ReadAt(buf, off); err != nil {
				return 0, err
			}
		}
	}
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf, off); err != nil {
			return 0, err
		}
	}
	if history == evicted {
		if err := writeBack(f.Name(), true); err != nil {
			return 0, err
		}
	}
	b := make([]byte, 4096)
	before := selfCPU()
	for range n {
		if _, err := f.WriteAt(b, rand.Int64N(size/4096)*4096); err != nil {
			return 0, err
		}
	}
	return (selfCPU() - before) * 1e6 / float64(n), nil
}

// selfCPU is this process's user and system CPU time so far, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// pinThread locks the calling goroutine to its thread and that thread to
// cpu; the function it returns undoes both. A probe that cannot pin fails
// rather than measure unpinned.
func pinThread(cpu int) (func(), error) {
	runtime.LockOSThread()
	var old, set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("pin the TCP probe: %w", err)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("pin the TCP probe to CPU %d: %w", cpu, err)
	}
	return func() {
		unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	}, nil
}
