package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/control"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "replicad-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, cmd := range []string{"replicad", "repctl"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, cmd), "github.com/replicad/replicad/cmd/"+cmd).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", cmd, err, out)
			os.Exit(1)
		}
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

// node is a replicad process started by a test.
type node struct {
	t      *testing.T
	dir    string
	config string
	socket string
	cmd    *exec.Cmd
	log    *bytes.Buffer
	exited chan error
	// wrap prefixes replicad's and repctl's command lines, e.g.
	// {"ip", "netns", "exec", NS} for a node in a network namespace. The
	// wrapper must exec its command, so that cmd's pid is replicad's.
	wrap []string
	// args are replicad's arguments; default: run --config CONFIG.
	args []string
}

// volumeSpec is a volume in a generated config.
type volumeSpec struct {
	Name, Size, Meta string
	ReadOnly         bool
}

// newNode writes a config for the volumes into a fresh directory; start
// runs it.
func newNode(t *testing.T, vols ...volumeSpec) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{t: t, dir: dir, config: filepath.Join(dir, "replicad.yaml"), socket: filepath.Join(dir, "control.sock")}
	var b strings.Builder
	fmt.Fprintf(&b, "node: {name: %s}\ncontrol: {socket: %s}\nmetrics: {listen: \"127.0.0.1:0\"}\nlog: {level: debug}\n", filepath.Base(dir), n.socket)
	fmt.Fprintf(&b, "nbd:\n  listen: [\"tcp://127.0.0.1:0\", \"unix://%s/nbd.sock\"]\nvolumes:\n", dir)
	for _, v := range vols {
		fmt.Fprintf(&b, "  - name: %s\n    device: %s/%s.img\n    size: %s\n    al-extents: 257\n", v.Name, dir, v.Name, v.Size)
		if v.Meta != "" {
			fmt.Fprintf(&b, "    meta: %s/%s\n", dir, v.Meta)
		}
		if v.ReadOnly {
			fmt.Fprintf(&b, "    read-only: true\n")
		}
	}
	if err := os.WriteFile(n.config, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return n
}

// start runs replicad and waits until its control socket answers.
func (n *node) start() {
	n.t.Helper()
	n.log = &bytes.Buffer{}
	args := n.args
	if args == nil {
		args = []string{"run", "--config", n.config}
	}
	argv := append(append(append([]string{}, n.wrap...), bin("replicad")), args...)
	n.cmd = exec.Command(argv[0], argv[1:]...)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = make(chan error, 1)
	go func() { n.exited <- n.cmd.Wait() }()
	n.t.Cleanup(func() { n.stop(syscall.SIGKILL) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := n.status(); err == nil {
			return
		}
		select {
		case err := <-n.exited:
			n.t.Fatalf("replicad exited during start: %v\n%s", err, n.log)
		default:
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("replicad did not answer on %s within 30s\n%s", n.socket, n.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop signals the process it started and waits for it.
func (n *node) stop(sig syscall.Signal) error {
	if n.cmd == nil || n.cmd.Process == nil {
		return nil
	}
	select {
	case err := <-n.exited:
		n.exited <- err
		return err
	default:
	}
	n.cmd.Process.Signal(sig)
	select {
	case err := <-n.exited:
		n.exited <- err
		return err
	case <-time.After(60 * time.Second):
		n.cmd.Process.Kill()
		n.t.Errorf("replicad did not exit within 60s of %v\n%s", sig, n.log)
		return <-n.exited
	}
}

func (n *node) status() (control.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return control.NewClient(n.socket).Status(ctx)
}

// repctlTimeout bounds one repctl run (wait-sync waits as long as the
// resync takes): a stuck cluster fails its test instead of hanging the
// suite until go test's own timeout.
const repctlTimeout = 5 * time.Minute

// repctl runs the real CLI against this node.
func (n *node) repctl(args ...string) (string, error) {
	argv := append(append(append([]string{}, n.wrap...), bin("repctl"), "--socket", n.socket), args...)
	ctx, cancel := context.WithTimeout(context.Background(), repctlTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w: no answer within %v", err, repctlTimeout)
	}
	return string(out), err
}

func (n *node) mustRepctl(args ...string) string {
	n.t.Helper()
	out, err := n.repctl(args...)
	if err != nil {
		n.t.Fatalf("repctl %v: %v\n%s", args, err, out)
	}
	return out
}

// create runs create-md and up for each volume.
func (n *node) create(names ...string) {
	n.t.Helper()
	for _, v := range names {
		n.mustRepctl("create-md", v)
		n.mustRepctl("up", v)
	}
}

// volume returns a volume's status.
func (n *node) volume(name string) control.Volume {
	n.t.Helper()
	st, err := n.status()
	if err != nil {
		n.t.Fatal(err)
	}
	for _, v := range st.Volumes {
		if v.Name == name {
			return v
		}
	}
	n.t.Fatalf("no volume %s", name)
	return control.Volume{}
}

// uri is a volume's TCP NBD URI.
func (n *node) uri(name string) string {
	n.t.Helper()
	for _, e := range n.volume(name).Exports {
		if strings.HasPrefix(e, "nbd://") {
			return e
		}
	}
	n.t.Fatalf("volume %s has no TCP export: %+v", name, n.volume(name))
	return ""
}

// unixURI is a volume's unix-socket NBD URI.
func (n *node) unixURI(name string) string {
	n.t.Helper()
	for _, e := range n.volume(name).Exports {
		if strings.HasPrefix(e, "nbd+unix://") {
			return e
		}
	}
	n.t.Fatalf("volume %s has no unix export", name)
	return ""
}

// run runs a command, failing the test with its output on error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func jsonUnmarshal(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}
