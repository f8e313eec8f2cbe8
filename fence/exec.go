package fence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/replicad/replicad/fence/agentproto"
)

// ExecAgent runs a ClusterLabs fence agent (fence_ipmilan, fence_redfish,
// fence_virsh, ...) once per call: the arguments go to its stdin as
// key=value lines, and its exit code is the answer. The agent runs in its
// own process group, which is killed when ctx ends, so a hung agent and its
// children (ipmitool, ssh) cannot outlive the call.
type ExecAgent struct {
	// Path is the agent program.
	Path string
	// Args are the configured parameters, sent before the per-call ones.
	Args []agentproto.Arg
	// HostArgument carries the port ("port", "plug", ... or "none").
	HostArgument string
	// Env, when non-nil, replaces the inherited environment.
	Env []string
}

var (
	_ Agent     = (*ExecAgent)(nil)
	_ Lister    = (*ExecAgent)(nil)
	_ Describer = (*ExecAgent)(nil)
)

// maxOutput bounds how much of an agent's stdout and stderr is kept.
const maxOutput = 256 << 10

// NewExecAgent returns an agent for program path with params sent on every
// call (sorted by name, so calls are reproducible).
func NewExecAgent(path string, params map[string]string, hostArgument string) *ExecAgent {
	a := &ExecAgent{Path: path, HostArgument: hostArgument}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a.Args = append(a.Args, agentproto.Arg{Name: k, Value: params[k]})
	}
	return a
}

// ResolveCommand finds an agent program: an absolute path as is, a name in
// the first directory of dirs that holds an executable of that name.
func ResolveCommand(command string, dirs []string) (string, error) {
	if filepath.IsAbs(command) {
		if _, err := exec.LookPath(command); err != nil {
			return "", fmt.Errorf("%s: %w", command, err)
		}
		return command, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, command)
		if _, err := exec.LookPath(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s (is the fence-agents package installed?)", command, strings.Join(dirs, ":"))
}

func (a *ExecAgent) name() string { return filepath.Base(a.Path) }

// limitedBuffer keeps the first n bytes written.
type limitedBuffer struct {
	b bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		if len(p) > room {
			l.b.Write(p[:room])
		} else {
			l.b.Write(p)
		}
	}
	return len(p), nil
}

type execResult struct {
	code           int
	stdout, stderr []byte
}

// run runs one action. A nil error means the agent exited (with any code);
// an error means it could not be started or ctx ended first.
func (a *ExecAgent) run(ctx context.Context, action, port string) (execResult, error) {
	args := append([]agentproto.Arg{}, a.Args...)
	args = append(args, agentproto.Arg{Name: "action", Value: action})
	if port != "" && a.HostArgument != "none" && a.HostArgument != "" {
		args = append(args, agentproto.Arg{Name: a.HostArgument, Value: port})
	}
	stdin, err := agentproto.EncodeArgs(args)
	if err != nil {
		return execResult{}, fmt.Errorf("%w: %s %s: %v", ErrAgentFailed, a.name(), action, err)
	}
	cmd := exec.CommandContext(ctx, a.Path)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = a.Env
	var stdout, stderr limitedBuffer
	stdout.n, stderr.n = maxOutput, maxOutput
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The agent leads its own process group; kill all of it.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// If a child escaped the group and holds the pipes open, stop waiting
	// for them shortly after the kill.
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	res := execResult{stdout: stdout.b.Bytes(), stderr: stderr.b.Bytes()}
	if ctx.Err() != nil {
		return res, fmt.Errorf("%s %s: process group killed: %w", a.name(), action, context.Cause(ctx))
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
		return res, nil
	default:
		return res, fmt.Errorf("%w: %s %s: %v", ErrAgentFailed, a.name(), action, err)
	}
}

// failure turns a non-zero exit into an error that says what the agent said.
func (a *ExecAgent) failure(action, port string, r execResult) error {
	sentinel := ErrAgentFailed
	if r.code == agentproto.ExitLoginDenied {
		sentinel = ErrLoginDenied
	}
	what := action
	if port != "" {
		what = fmt.Sprintf("%s (port %q)", action, port)
	}
	msg := fmt.Sprintf("%s %s: exit %d (%s)", a.name(), what, r.code, agentproto.ExitText(action, r.code))
	if said := agentMessage(r.stderr, r.stdout); said != "" {
		msg += ": " + said
	}
	return fmt.Errorf("%w: %s", sentinel, msg)
}

var (
	logPrefix = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ ((ERROR|WARNING|INFO|DEBUG|CRITICAL):\s*)?`)
	noise     = regexp.MustCompile(`DeprecationWarning|^from \w+ import|^import |^warnings\.warn`)
)

// agentMessage picks the lines of agent output that explain a failure:
// ERROR/Failed lines if any, else the last few lines, without Python
// warnings and log timestamps.
func agentMessage(outputs ...[]byte) string {
	var lines, errLines []string
	for _, out := range outputs {
		for _, l := range strings.Split(string(out), "\n") {
			l = strings.TrimSpace(logPrefix.ReplaceAllString(strings.TrimSpace(l), ""))
			if l == "" || noise.MatchString(l) {
				continue
			}
			lines = append(lines, l)
			if strings.Contains(l, "ERROR") || strings.HasPrefix(l, "Failed") || strings.Contains(l, "Error") {
				errLines = append(errLines, l)
			}
		}
	}
	pick := errLines
	if len(pick) == 0 {
		pick = lines
	}
	if len(pick) > 3 {
		pick = pick[len(pick)-3:]
	}
	s := strings.Join(pick, "; ")
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}

// Power runs the off or on action.
func (a *ExecAgent) Power(ctx context.Context, action Action, port string) error {
	if action != ActionOff && action != ActionOn {
		return fmt.Errorf("%w: power action %q", ErrUnsupported, action)
	}
	r, err := a.run(ctx, string(action), port)
	if err != nil {
		return err
	}
	if r.code != 0 {
		return a.failure(string(action), port, r)
	}
	return nil
}

// Status runs the status action: exit 0 is on, 2 is off.
func (a *ExecAgent) Status(ctx context.Context, port string) (State, error) {
	r, err := a.run(ctx, agentproto.ActionStatus, port)
	if err != nil {
		return StateUnknown, err
	}
	switch r.code {
	case agentproto.StatusOn:
		return StateOn, nil
	case agentproto.StatusOff:
		return StateOff, nil
	}
	return StateUnknown, a.failure(agentproto.ActionStatus, port, r)
}

// Monitor runs the monitor action.
func (a *ExecAgent) Monitor(ctx context.Context) error {
	r, err := a.run(ctx, agentproto.ActionMonitor, "")
	if err != nil {
		return err
	}
	if r.code != 0 {
		return a.failure(agentproto.ActionMonitor, "", r)
	}
	return nil
}

// List runs the list action.
func (a *ExecAgent) List(ctx context.Context) ([]agentproto.Plug, error) {
	r, err := a.run(ctx, agentproto.ActionList, "")
	if err != nil {
		return nil, err
	}
	if r.code != 0 {
		return nil, a.failure(agentproto.ActionList, "", r)
	}
	return agentproto.ParseList(r.stdout, ","), nil
}

// Metadata runs the metadata action and parses its XML.
func (a *ExecAgent) Metadata(ctx context.Context) (*agentproto.Metadata, error) {
	r, err := a.run(ctx, agentproto.ActionMetadata, "")
	if err != nil {
		return nil, err
	}
	if r.code != 0 {
		return nil, a.failure(agentproto.ActionMetadata, "", r)
	}
	m, err := agentproto.ParseMetadata(r.stdout)
	if err != nil {
		return nil, fmt.Errorf("%s metadata: %w", a.name(), err)
	}
	return m, nil
}
