package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replicad/replicad/lvs"
	"github.com/replicad/replicad/lvs/lvstest"
)

func main() {
	rounds := flag.Int("rounds", 5, "rounds per path and measurement (alternating direct and VIP)")
	duration := flag.Duration("duration", 2*time.Second, "length of each round")
	workers := flag.Int("workers", 4, "concurrent clients for the connections/s measurement")
	flag.Parse()
	if why := lvstest.Available(); why != "" {
		fmt.Fprintln(os.Stderr, "lvs-bench needs root and iproute2:", why)
		os.Exit(2)
	}
	if err := run(*rounds, *duration, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "lvs-bench:", err)
		os.Exit(1)
	}
}

// Ports. The real server listens on separate ports for the two paths
// (same server code): a client port reused for both would meet the other
// path's TIME_WAIT socket on the server with timestamps from another
// per-destination offset, which PAWS rejects (SYN retransmits, 1 s each).
const (
	connPort       = 7000 // direct
	streamPort     = 7001
	rsConnForVIP   = 7002 // behind the VIP
	rsStreamForVIP = 7003
	vipConn        = 7100
	vipStream      = 7101
)

func run(rounds int, duration time.Duration, workers int) error {
	topo, err := lvstest.NewTopology(fmt.Sprintf("rpdlvs-b%d", os.Getpid()%100000), 1)
	if err != nil {
		return err
	}
	defer topo.Close()
	d1, rs, client := topo.Directors[0], topo.RealServers[0], topo.Client
	// Many short connections: let the client reuse ports in TIME_WAIT, and
	// keep the director's conntrack from filling up with TIME_WAIT entries.
	for _, s := range []struct {
		ns       *lvstest.NS
		key, val string
	}{
		{client, "net.ipv4.ip_local_port_range", "1024 65000"},
		{client, "net.ipv4.tcp_tw_reuse", "1"},
		{d1, "net.netfilter.nf_conntrack_tcp_timeout_time_wait", "1"},
	} {
		if err := s.ns.Sysctl(s.key, s.val); err != nil {
			return err
		}
	}

	stop, err := startServers(rs)
	if err != nil {
		return err
	}
	defer stop()

	rsAddr := topo.RealServerAddrs[0].String()
	vip := topo.VIP.Addr().String()
	cfg := lvs.DefaultConfig()
	cfg.Backend = "nftables"
	cfg.Services = []lvs.ServiceConfig{
		{Name: "conn", Address: fmt.Sprintf("%s:%d", vip, vipConn), Scheduler: "rr", RealServers: []lvs.RealServerConfig{{Address: fmt.Sprintf("%s:%d", rsAddr, rsConnForVIP)}}},
		{Name: "stream", Address: fmt.Sprintf("%s:%d", vip, vipStream), Scheduler: "rr", RealServers: []lvs.RealServerConfig{{Address: fmt.Sprintf("%s:%d", rsAddr, rsStreamForVIP)}}},
	}
	m, err := lvs.New(cfg, lvs.Options{NetNS: d1.Path})
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Start(context.Background()); err != nil {
		return err
	}
	for _, vc := range []lvs.VIPConfig{
		{Name: "front", Address: topo.VIP.String(), Interface: "eth0"},
		{Name: "gateway", Address: topo.GatewayVIP.String(), Interface: "eth1"},
	} {
		v, err := lvs.NewVIP(vc, lvs.VIPOptions{NetNS: d1.Path})
		if err != nil {
			return err
		}
		defer v.Close()
		if err := v.Acquire(context.Background()); err != nil {
			return err
		}
	}

	pool := make([]*lvstest.Worker, workers)
	for i := range pool {
		if pool[i], err = client.NewWorker(); err != nil {
			return err
		}
		defer pool[i].Close()
	}

	fmt.Printf("lvs-bench: %d rounds of %s per path, %d connection workers (client, director and server share this machine's cores)\n", rounds, duration, workers)
	var direct, viaVIP struct{ cps, mbps []float64 }
	for r := range rounds {
		// Alternate which path goes first so drift in machine load hits both.
		order := []bool{false, true}
		if r%2 == 1 {
			order = []bool{true, false}
		}
		for _, useVIP := range order {
			ca, sa := fmt.Sprintf("%s:%d", rsAddr, connPort), fmt.Sprintf("%s:%d", rsAddr, streamPort)
			if useVIP {
				ca, sa = fmt.Sprintf("%s:%d", vip, vipConn), fmt.Sprintf("%s:%d", vip, vipStream)
			}
			cps, err := connRate(pool, ca, duration)
			if err != nil {
				return fmt.Errorf("connections to %s: %w", ca, err)
			}
			mbps, err := throughput(pool[0], sa, duration)
			if err != nil {
				return fmt.Errorf("stream from %s: %w", sa, err)
			}
			p := &direct
			if useVIP {
				p = &viaVIP
			}
			p.cps, p.mbps = append(p.cps, cps), append(p.mbps, mbps)
			fmt.Printf("round %d %-6s %9.0f conn/s %9.1f MB/s\n", r+1, map[bool]string{false: "direct", true: "vip"}[useVIP], cps, mbps)
			if os.Getenv("LVSBENCH_DEBUG") != "" {
				out, _ := client.Exec("nstat", "TcpExtTCPSynRetrans", "TcpRetransSegs", "TcpAttemptFails", "TcpExtTCPTimeouts")
				out2, _ := d1.Exec("nstat", "IpExtInNoRoutes", "IpInDiscards", "IpOutNoRoutes")
				out3, _ := rs.Exec("nstat", "TcpExtTW", "TcpExtTWRecycled", "TcpExtPAWSEstab", "TcpExtTCPAbortOnData", "TcpExtListenDrops", "TcpExtListenOverflows", "TcpExtTCPChallengeACK", "TcpExtTCPACKSkippedChallenge")
				fmt.Print(out, out2, out3)
			}
		}
	}
	st, err := m.Status(context.Background())
	if err != nil {
		return err
	}
	for _, s := range st.Services {
		fmt.Printf("director counted %d new connections for service %s\n", s.Stats.Connections, s.Name)
	}
	dc, vc := median(direct.cps), median(viaVIP.cps)
	dm, vm := median(direct.mbps), median(viaVIP.mbps)
	fmt.Printf("\n%-22s %12s %12s %8s\n", "median", "direct", "vip", "vip/direct")
	fmt.Printf("%-22s %12.0f %12.0f %8.3f\n", "connections/s", dc, vc, vc/dc)
	fmt.Printf("%-22s %12.1f %12.1f %8.3f\n", "throughput MB/s", dm, vm, vm/dm)
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// startServers runs, in the real server's namespace, a server that writes
// one byte and closes (connections/s) and one that streams zeros until the
// client goes away (throughput).
func startServers(rs *lvstest.NS) (stop func(), err error) {
	var conns, streams []net.Listener
	if err := rs.Do(func() error {
		for _, p := range []int{connPort, rsConnForVIP, streamPort, rsStreamForVIP} {
			ln, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
			if err != nil {
				return err
			}
			if p == connPort || p == rsConnForVIP {
				conns = append(conns, ln)
			} else {
				streams = append(streams, ln)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	serve := func(ln net.Listener, handle func(net.Conn)) {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}
	stream := func(c net.Conn) {
		buf := make([]byte, 256<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}
	for i := range conns {
		wg.Add(2)
		go serve(conns[i], func(c net.Conn) { c.Write([]byte{'x'}) })
		go serve(streams[i], stream)
	}
	return func() {
		for i := range conns {
			conns[i].Close()
			streams[i].Close()
		}
		wg.Wait()
	}, nil
}

// connRate runs one client loop per worker for d and returns completed
// connections per second.
func connRate(pool []*lvstest.Worker, addr string, d time.Duration) (float64, error) {
	var n atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for _, w := range pool {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.Do(func() {
				buf := make([]byte, 8)
				for time.Now().Before(deadline) {
					c, err := net.DialTimeout("tcp", addr, 3*time.Second)
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
					c.SetDeadline(time.Now().Add(3 * time.Second))
					_, err = io.ReadFull(c, buf[:1])
					if err == nil {
						_, err = c.Read(buf) // the server's close
						if errors.Is(err, io.EOF) {
							err = nil
						}
					}
					c.Close()
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
					n.Add(1)
				}
			})
		}()
	}
	start := time.Now()
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return 0, e.(error)
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// throughput reads from one stream for d and returns MB/s (10^6 bytes).
func throughput(w *lvstest.Worker, addr string, d time.Duration) (float64, error) {
	var c net.Conn
	var err error
	w.Do(func() { c, err = net.DialTimeout("tcp", addr, 3*time.Second) })
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	var total int64
	start := time.Now()
	c.SetReadDeadline(start.Add(d))
	for {
		k, err := c.Read(buf)
		total += int64(k)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			return 0, err
		}
	}
	return float64(total) / time.Since(start).Seconds() / 1e6, nil
}
