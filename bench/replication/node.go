package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/internal/freeport"
	"golang.org/x/sys/unix"
)

const volume = "bench"

// node is one replicad process the benchmark started.
type node struct {
	name    string
	dir     string
	config  string
	socket  string
	nbdPort int
	// cpu is the CPU the node runs on with -pin (its index in the setup:
	// the primary or standalone node on CPU 0, the secondary on CPU 1),
	// or -1.
	cpu int
	// device is the volume's file.
	device string
	cmd    *exec.Cmd
	done   chan struct{}
}

// setup is what one measurement runs against: a standalone volume, or a
// replicated pair whose first node is primary.
type setup struct {
	name  string
	nodes []*node
}

func (s *setup) primary() *node { return s.nodes[0] }

func (n *node) uri() string { return fmt.Sprintf("nbd://127.0.0.1:%d/%s", n.nbdPort, volume) }

func (n *node) client() *control.Client { return control.NewClient(n.socket) }

// newSetup writes the configs for a standalone volume (protocol "") or a
// pair replicating with protocol, all in work/name/.
func newSetup(work, name, protocol, size string, pin bool) (*setup, error) {
	count := 1
	if protocol != "" {
		count = 2
	}
	ports, err := freeport.Loopback(2 * count)
	if err != nil {
		return nil, err
	}
	s := &setup{name: name}
	var members strings.Builder
	for i := 0; i < count; i++ {
		fmt.Fprintf(&members, "    - {name: n%d, id: %d, address: \"127.0.0.1:%d\"}\n", i, i, ports[count+i])
	}
	for i := 0; i < count; i++ {
		dir := filepath.Join(work, name, fmt.Sprintf("n%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		n := &node{name: fmt.Sprintf("%s/n%d", name, i), dir: dir, config: filepath.Join(dir, "replicad.yaml"),
			socket: filepath.Join(dir, "control.sock"), nbdPort: ports[i], cpu: -1, device: filepath.Join(dir, volume+".img")}
		if pin {
			n.cpu = i
		}
		cfg := fmt.Sprintf(`node: {name: n%d, id: %d}
control: {socket: %q}
metrics: {listen: ""}
log: {level: warn}
nbd: {listen: ["tcp://127.0.0.1:%d"]}
volumes:
  - name: %s
    device: %q
    size: %s
`, i, i, n.socket, n.nbdPort, volume, n.device, size)
		if protocol != "" {
			cfg += fmt.Sprintf(`    replication:
      peers: [n%d]
      protocol: %s
cluster:
  secret: "replication-benchmark-secret-0123"
  nodes:
%s`, 1-i, protocol, members.String())
		}
		if err := os.WriteFile(n.config, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		s.nodes = append(s.nodes, n)
	}
	return s, nil
}

// start runs the node's replicad and waits for its control socket.
func (n *node) start(replicad, profiles string) error {
	log, err := os.Create(filepath.Join(n.dir, "replicad.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	args := []string{"run", "--config", n.config}
	if profiles != "" {
		args = append(args, "--cpuprofile", filepath.Join(profiles, strings.ReplaceAll(n.name, "/", "-")+".prof"))
	}
	if *schedBatch {
		// chrt execs replicad: the PID stays the node's.
		args = append([]string{"--batch", "0", replicad}, args...)
		replicad = "chrt"
	}
	n.cmd = pinned(n.cpu, replicad, args...)
	n.cmd.Stdout, n.cmd.Stderr = log, log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		return err
	}
	n.done = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.done) }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := n.client().Status(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-n.done:
			return fmt.Errorf("%s exited during start; see %s/replicad.log", n.name, n.dir)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer: %v", n.name, err)
		}
	}
}

func (n *node) stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
	}
}

// do is one control API call with a generous timeout.
func (n *node) do(method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), control.DefaultTimeout)
	defer cancel()
	if err := n.client().Do(ctx, method, path, in, out); err != nil {
		return fmt.Errorf("%s: %s %s: %w", n.name, method, path, err)
	}
	return nil
}

func (n *node) createUp(force bool) error {
	if err := n.do("POST", "/v1/volumes/"+volume+"/create-md", control.CreateMDRequest{Force: force}, nil); err != nil {
		return err
	}
	return n.do("POST", "/v1/volumes/"+volume+"/up", nil, nil)
}

func (n *node) volume() (control.Volume, error) {
	var v control.Volume
	return v, n.do("GET", "/v1/volumes/"+volume, nil, &v)
}

// peer returns the volume's only peer.
func (n *node) peer() (control.Peer, error) {
	v, err := n.volume()
	if err != nil {
		return control.Peer{}, err
	}
	if len(v.Peers) != 1 {
		return control.Peer{}, fmt.Errorf("%s: %d peers", n.name, len(v.Peers))
	}
	return v.Peers[0], nil
}

// inSync says whether the node's only peer is connected, established and
// up to date.
func (n *node) inSync() (bool, control.Peer, error) {
	v, err := n.volume()
	if err != nil || len(v.Peers) != 1 {
		return false, control.Peer{}, errors.Join(err, fmt.Errorf("%s: %d peers", n.name, len(v.Peers)))
	}
	p := v.Peers[0]
	if p.Connection == "StandAlone" {
		return false, p, fmt.Errorf("%s: peer StandAlone: %s", n.name, p.LastError)
	}
	return v.Disk == "UpToDate" && p.Connection == "Connected" && p.Replication == "Established" && p.Disk == "UpToDate", p, nil
}

// waitSync polls every 20 ms until the node is in sync with its peer.
func (n *node) waitSync(timeout time.Duration) (control.Peer, error) {
	deadline := time.Now().Add(timeout)
	for {
		ok, p, err := n.inSync()
		if err != nil {
			return p, err
		}
		if ok {
			return p, nil
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("%s: not in sync after %v: %+v", n.name, timeout, p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startSetup starts every node, creates the volume and, for a pair, makes
// the first node primary and waits for the initial full sync.
func startSetup(s *setup, replicad, profiles string) error {
	for _, n := range s.nodes {
		if err := n.start(replicad, profiles); err != nil {
			return err
		}
		if err := n.createUp(false); err != nil {
			return err
		}
	}
	if len(s.nodes) == 1 {
		return nil
	}
	if err := s.primary().do("POST", "/v1/volumes/"+volume+"/primary", control.PrimaryRequest{Force: true}, nil); err != nil {
		return err
	}
	if _, err := s.primary().waitSync(30 * time.Minute); err != nil {
		return err
	}
	// The initial sync read the primary's whole file, which leaves it in
	// readahead's large folios, and a small write costs ext4 more in a
	// large folio: every setup starts from an empty cache instead.
	for _, n := range s.nodes {
		if err := writeBack(n.device, true); err != nil {
			return err
		}
	}
	return nil
}

// writeBack writes back path's dirty pages and, with drop, drops its
// page cache.
func writeBack(path string, drop bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return fmt.Errorf("fdatasync %s: %w", path, err)
	}
	if drop {
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			return fmt.Errorf("drop the page cache of %s: %w", path, err)
		}
	}
	return nil
}

// cpuSeconds is the user+system CPU time each of the setup's replicad
// processes used so far (from /proc/PID/stat; USER_HZ is 100 on Linux),
// in node order.
func (s *setup) cpuSeconds() ([]float64, error) {
	var out []float64
	for _, n := range s.nodes {
		var total float64
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid))
		if err != nil {
			return nil, err
		}
		// Fields after the command name (which may hold spaces) start at
		// the state, field 3; utime and stime are fields 14 and 15.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			return nil, fmt.Errorf("/proc/%d/stat: %d fields", n.cmd.Process.Pid, len(f))
		}
		for _, x := range f[11:13] {
			v, err := strconv.ParseFloat(x, 64)
			if err != nil {
				return nil, err
			}
			total += v / 100
		}
		out = append(out, total)
	}
	return out, nil
}

// sum adds up v.
func sum(v []float64) float64 {
	var t float64
	for _, x := range v {
		t += x
	}
	return t
}

// pinned is exec.Command for name, run under taskset on cpu when cpu >= 0
// (all its threads then stay on that CPU).
func pinned(cpu int, name string, args ...string) *exec.Cmd {
	if cpu < 0 {
		return exec.Command(name, args...)
	}
	return exec.Command("taskset", append([]string{"-c", strconv.Itoa(cpu), name}, args...)...)
}

// warmCache reads path through the page cache once.
func warmCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}
