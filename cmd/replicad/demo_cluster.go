package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/replicad/replicad/internal/bytesize"
	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/internal/freeport"
)

// The multi-node demo runs every node as its own `replicad --config FILE`
// process, so that a user can kill one and start it again by hand with the
// command the demo printed: the daemon does not know it is in a demo.

const demoVolume = "r0"

// demoNode is one node of the multi-node demo.
type demoNode struct {
	name    string
	dir     string
	config  string
	socket  string
	log     string
	nbdPort int
	// cmd is the process the demo started; done is closed when it exited,
	// with waitErr set.
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// running says the demo's process for the node has not exited.
func (n *demoNode) running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

func (n *demoNode) client() *control.Client { return control.NewClient(n.socket) }

func (n *demoNode) uri() string {
	return fmt.Sprintf("nbd://127.0.0.1:%d/%s", n.nbdPort, demoVolume)
}

// runCluster is `replicad demo --nodes N`.
func (o *demoOptions) runCluster(out io.Writer) error {
	if o.nodes < 2 || o.nodes > 8 {
		return fmt.Errorf("--nodes %d: want 2..8", o.nodes)
	}
	protocol := strings.ToUpper(o.protocol)
	if protocol != "A" && protocol != "B" && protocol != "C" {
		return fmt.Errorf("--protocol %q: want A, B or C", o.protocol)
	}
	size, err := bytesize.Parse(o.size)
	if err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find the replicad executable to start the nodes: %w", err)
	}
	dir, temporary := o.dir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "replicad-demo-"); err != nil {
			return err
		}
		temporary = true
	} else if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	nodes, err := writeDemoConfigs(dir, o.nodes, protocol, size, o.port, out)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = runDemoNodes(ctx, out, exe, nodes, dir, temporary)
	stopDemoNodes(out, nodes)
	if temporary {
		os.RemoveAll(dir)
	}
	if err != nil && ctx.Err() == nil {
		return err
	}
	fmt.Fprintln(out, "replicad demo stopped.")
	return nil
}

// writeDemoConfigs writes DIR/<node>/replicad.yaml for each node, or keeps
// the ones a previous demo in DIR wrote (and their ports).
func writeDemoConfigs(dir string, count int, protocol string, size int64, basePort int, out io.Writer) ([]*demoNode, error) {
	var nodes []*demoNode
	for i := 0; i < count; i++ {
		name := fmt.Sprintf("n%d", i)
		d := filepath.Join(dir, name)
		nodes = append(nodes, &demoNode{name: name, dir: d, config: filepath.Join(d, "replicad.yaml"),
			socket: filepath.Join(d, "control.sock"), log: filepath.Join(d, "replicad.log")})
	}
	if _, err := os.Stat(nodes[0].config); err == nil {
		for _, n := range nodes {
			port, err := nbdPortOf(n.config)
			if err != nil {
				return nil, fmt.Errorf("reusing the demo in %s: %w (remove the directory to start afresh)", dir, err)
			}
			n.nbdPort = port
		}
		fmt.Fprintf(out, "Reusing the configurations in %s (its volume data too).\n", dir)
		return nodes, nil
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	secretPath := filepath.Join(dir, "cluster.secret")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(secretPath, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return nil, err
	}
	// One port for each node's peer link and one for its NBD listener
	// (used unless basePort gives it one).
	ports, err := freeport.Loopback(2 * count)
	if err != nil {
		return nil, err
	}
	replPorts, nbdPorts := ports[:count], ports[count:]
	var members strings.Builder
	for i, n := range nodes {
		fmt.Fprintf(&members, "    - {name: %s, id: %d, address: \"127.0.0.1:%d\"}\n", n.name, i, replPorts[i])
	}
	for i, n := range nodes {
		n.nbdPort = 0
		if basePort != 0 && basePort+i < 65536 && freeport.Free(basePort+i) {
			n.nbdPort = basePort + i
		}
		if n.nbdPort == 0 {
			n.nbdPort = nbdPorts[i]
		}
		var peers []string
		for _, p := range nodes {
			if p != n {
				peers = append(peers, p.name)
			}
		}
		maxPeers := ""
		if count-1 > 2 {
			maxPeers = fmt.Sprintf("    max-peers: %d\n", count-1)
		}
		cfg := fmt.Sprintf(`# Written by replicad demo --nodes %d. Run this node with:
#   replicad --config %s
node: {name: %s, id: %d}
control: {socket: %q}
metrics: {listen: "127.0.0.1:0"}
log: {level: info}
nbd:
  listen: ["tcp://127.0.0.1:%d", %q]
cluster:
  secret-file: %q
  nodes:
%svolumes:
  - name: %s
    description: replicad demo volume, replicated on %d nodes
    device: %q
    size: %d
%s    replication:
      peers: [%s]
      protocol: %s
`, count, n.config, n.name, i, n.socket, n.nbdPort, "unix://"+filepath.Join(n.dir, "nbd.sock"), secretPath,
			members.String(), demoVolume, count, filepath.Join(n.dir, demoVolume+".img"), size, maxPeers,
			strings.Join(peers, ", "), protocol)
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			return nil, err
		}
		if _, err := loadConfig("", strings.NewReader(cfg), nil); err != nil {
			return nil, fmt.Errorf("demo configuration of %s: %w", n.name, err)
		}
		if err := os.WriteFile(n.config, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
	}
	return nodes, nil
}

// nbdPortOf reads the TCP NBD port of a config the demo wrote.
func nbdPortOf(path string) (int, error) {
	cfg, err := loadConfig(path, nil, nil)
	if err != nil {
		return 0, err
	}
	for _, l := range cfg.NBD.Listen {
		if rest, ok := strings.CutPrefix(l, "tcp://"); ok {
			_, port, err := net.SplitHostPort(rest)
			if err != nil {
				return 0, fmt.Errorf("%s: nbd.listen %q: %w", path, l, err)
			}
			return strconv.Atoi(port)
		}
	}
	return 0, fmt.Errorf("%s: no tcp:// NBD listener", path)
}

// runDemoNodes starts the nodes, sets the volume up, waits for the initial
// sync, prints each node's line and supervises until ctx ends.
func runDemoNodes(ctx context.Context, out io.Writer, exe string, nodes []*demoNode, dir string, temporary bool) error {
	exits := make(chan *demoNode, len(nodes))
	for _, n := range nodes {
		if err := n.start(exe, exits); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		if err := n.waitAnswer(ctx); err != nil {
			return err
		}
	}
	fresh := false
	for _, n := range nodes {
		created, err := n.bringUp(ctx)
		if err != nil {
			return err
		}
		fresh = fresh || created
	}
	if err := promoteFirst(ctx, out, nodes, fresh); err != nil {
		return err
	}
	if err := waitDemoSync(ctx, out, nodes[0]); err != nil {
		return err
	}

	fmt.Fprintf(out, "\nreplicad demo: volume %s replicated on %d nodes, %s primary (demo pid %d).\n", demoVolume, len(nodes), nodes[0].name, os.Getpid())
	for _, n := range nodes {
		fmt.Fprintf(out, "node=%s pid=%d config=%s socket=%s nbd=%s\n", n.name, n.cmd.Process.Pid, n.config, n.socket, n.uri())
	}
	first, second := nodes[0], nodes[1]
	fmt.Fprintf(out, "\nTry:     nbdinfo %s\n", first.uri())
	fmt.Fprintf(out, "         repctl --socket %s status\n", first.socket)
	fmt.Fprintf(out, "         repctl --socket %s events\n", second.socket)
	fmt.Fprintf(out, "Failover: kill %d; repctl --socket %s primary %s\n", first.cmd.Process.Pid, second.socket, demoVolume)
	fmt.Fprintf(out, "Restart: replicad --config %s   (it comes back secondary and resyncs)\n", first.config)
	fmt.Fprintf(out, "Logs:    %s\n", filepath.Join(dir, "*", "replicad.log"))
	fmt.Fprintf(out, "Stop:    press Ctrl-C (or kill %d); the nodes the demo started stop cleanly", os.Getpid())
	if temporary {
		fmt.Fprintf(out, " and %s is removed", dir)
	}
	fmt.Fprintln(out, ".")

	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-exits:
			fmt.Fprintf(out, "node=%s pid=%d exited (%s); start it again with: replicad --config %s\n", n.name, n.cmd.Process.Pid, exitText(n.waitErr), n.config)
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// start runs `replicad --config FILE` for the node, its output in its log.
// The node is sent on exits when the process ends.
func (n *demoNode) start(exe string, exits chan<- *demoNode) error {
	logFile, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	n.cmd = exec.Command(exe, "--config", n.config)
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	// Its own process group, so that Ctrl-C reaches the demo only and the
	// demo stops the nodes; a parent's death (kill -9 of the demo) still
	// stops them.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	n.done = make(chan struct{})
	go func() {
		n.waitErr = n.cmd.Wait()
		close(n.done)
		exits <- n
	}()
	return nil
}

// waitAnswer waits until the node's control socket answers.
func (n *demoNode) waitAnswer(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := n.client().Status(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-n.done:
			return fmt.Errorf("node %s exited during start (%s); the end of %s:\n%s", n.name, exitText(n.waitErr), n.log, logTail(n.log, 5))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s does not answer on %s after 30s; see %s", n.name, n.socket, n.log)
		}
	}
}

// logTail is the last lines of a node's log, indented, for an error.
func logTail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	all = all[max(0, len(all)-lines):]
	return "  " + strings.Join(all, "\n  ")
}

// volume returns the demo volume's status on the node.
func (n *demoNode) volume(ctx context.Context) (control.Volume, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var v control.Volume
	err := n.client().Do(cctx, "GET", "/v1/volumes/"+demoVolume, nil, &v)
	return v, err
}

// bringUp creates the volume's metadata if it has none and brings it up;
// created says it had none.
func (n *demoNode) bringUp(ctx context.Context) (created bool, err error) {
	v, err := n.volume(ctx)
	if err != nil {
		return false, fmt.Errorf("%s: %w", n.name, err)
	}
	cctx, cancel := context.WithTimeout(ctx, control.DefaultTimeout)
	defer cancel()
	switch v.State {
	case control.StateUp:
		return false, nil
	case control.StateUnconfigured:
		if _, err := n.client().CreateMD(cctx, demoVolume, false); err != nil {
			return false, fmt.Errorf("create-md on %s: %w", n.name, err)
		}
		created = true
	case control.StateDown:
	default:
		return false, fmt.Errorf("volume %s on %s is %s: %s (%s)", demoVolume, n.name, v.State, v.Error, v.Hint)
	}
	if _, err := n.client().Up(cctx, demoVolume); err != nil {
		return created, fmt.Errorf("up on %s: %w", n.name, err)
	}
	return created, nil
}

// promoteFirst makes the first node primary. Fresh volumes are all
// Inconsistent, so the first node's data is forced to be the valid copy
// (which starts the initial full sync). Volumes from an earlier demo in
// the same directory first get a chance to connect and agree.
func promoteFirst(ctx context.Context, out io.Writer, nodes []*demoNode, fresh bool) error {
	first := nodes[0]
	primary := func(force bool) error {
		cctx, cancel := context.WithTimeout(ctx, control.DefaultTimeout)
		defer cancel()
		return first.client().Do(cctx, "POST", "/v1/volumes/"+demoVolume+"/primary", control.PrimaryRequest{Force: force}, nil)
	}
	if fresh {
		return primary(true)
	}
	v, err := first.volume(ctx)
	if err != nil {
		return err
	}
	if v.Role == "Primary" {
		return nil
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !allConnected(v); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if v, err = first.volume(ctx); err != nil {
			return err
		}
	}
	if err := primary(false); err != nil {
		fmt.Fprintf(out, "%s cannot become primary as it is (%v): forcing it; its data becomes the valid copy.\n", first.name, err)
		return primary(true)
	}
	return nil
}

func allConnected(v control.Volume) bool {
	for _, p := range v.Peers {
		if p.Connection != "Connected" {
			return false
		}
	}
	return len(v.Peers) > 0
}

// waitDemoSync waits until the primary is in sync with every peer,
// printing the resync's progress now and then.
func waitDemoSync(ctx context.Context, out io.Writer, primary *demoNode) error {
	start, last := time.Now(), time.Now()
	for {
		v, err := primary.volume(ctx)
		if err != nil {
			return err
		}
		done := v.Disk == "UpToDate" && len(v.Peers) > 0
		for _, p := range v.Peers {
			if p.Connection == "StandAlone" {
				return fmt.Errorf("%s: peer %s is StandAlone (%s)", primary.name, p.Node, p.LastError)
			}
			if p.Connection != "Connected" || p.Replication != "Established" || p.Disk != "UpToDate" {
				done = false
			}
			if p.Resync != nil && time.Since(last) >= 2*time.Second {
				last = time.Now()
				fmt.Fprintf(out, "initial sync to %s: %.0f%% of %s\n", p.Node, p.Resync.Percent, bytesize.Format(p.Resync.TotalBytes))
			}
		}
		if done {
			fmt.Fprintf(out, "initial sync done in %.1fs\n", time.Since(start).Seconds())
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stopDemoNodes stops the processes the demo started (SIGTERM, then
// SIGKILL after 60s) and names the nodes still answering: those a user
// started by hand, which are theirs to stop.
func stopDemoNodes(out io.Writer, nodes []*demoNode) {
	for _, n := range nodes {
		if n.running() {
			n.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, n := range nodes {
		if n.done == nil {
			continue
		}
		select {
		case <-n.done:
		case <-time.After(60 * time.Second):
			fmt.Fprintf(out, "node %s did not stop within 60s of SIGTERM: killing it\n", n.name)
			n.cmd.Process.Kill()
			<-n.done
		}
	}
	for _, n := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := n.client().Status(ctx)
		cancel()
		if err == nil {
			fmt.Fprintf(out, "node %s (started outside the demo) is still running on %s: stop it yourself\n", n.name, n.socket)
		} else if !errors.Is(err, control.ErrNotRunning) && !errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintf(out, "node %s: %v\n", n.name, err)
		}
	}
}
