package fencetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// IPMIConfig describes one simulated BMC.
type IPMIConfig struct {
	// Dir holds lan.conf, sim.emu, chassis.sh, the power state file and
	// ipmi_sim's state directory. It must exist.
	Dir string
	// Addr is the address to listen on; default 127.0.0.1.
	Addr string
	// Port is the UDP port; 0 picks a free one.
	Port     int
	User     string // default admin
	Password string // default secret
	// OnPowerOff and OnPowerOn are shell commands the chassis-control
	// script runs after storing the new power state: in a cluster test,
	// "power off" kills the node's replicad and "power on" starts it.
	OnPowerOff, OnPowerOn string
	// Wrap prefixes the ipmi_sim command line, e.g.
	// {"ip", "netns", "exec", "rpdfence-a"}; that namespace's lo must be
	// up for Addr 127.0.0.1. The wrapper must exec ipmi_sim (ip netns exec
	// does), since readiness is read from /proc/PID/net/udp.
	Wrap []string
	// IPMISim is the simulator's path; default "ipmi_sim" from PATH.
	IPMISim string
}

// IPMISim is a running ipmi_sim. Its chassis power lives in PowerFile:
// "1" on, "0" off.
type IPMISim struct {
	cfg       IPMIConfig
	cmd       *exec.Cmd
	done      chan error
	Port      int
	PowerFile string
	LogFile   string
}

const simEmu = `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`

// chassis.sh follows the testbed's script, with the state path fixed and
// the power hooks added.
const chassisTemplate = `#!/bin/sh
# ipmi_sim chassis control: "get power" prints power:N; "set power N" stores N.
state='@STATE@'
op=$1; shift
case $op in
get)
  for p in "$@"; do
    case $p in
      power) echo "power:$(cat "$state" 2>/dev/null || echo 1)" ;;
      boot) echo "boot:none" ;;
    esac
  done ;;
set)
  while [ $# -gt 1 ]; do
    if [ "$1" = power ]; then
      echo "$2" > "$state"
      if [ "$2" = 0 ]; then
        @ONOFF@
      else
        @ONON@
      fi
    fi
    shift 2
  done ;;
esac
`

func quoteOK(s string) error {
	if strings.ContainsAny(s, "'\"\n\\ ") {
		return fmt.Errorf("fencetest: %q cannot be used in the generated ipmi_sim files", s)
	}
	return nil
}

// NetnsKillCommand is a chassis hook (IPMIConfig.OnPowerOff) for a node
// simulated by network namespace ns: power off SIGKILLs every process in
// it, the node's replicad included. ipmi_sim must run as root.
func NetnsKillCommand(ns string) string {
	return fmt.Sprintf("ip netns pids %s | xargs -r kill -9", ns)
}

// FreeUDPPort returns a UDP port on addr that was free a moment ago.
func FreeUDPPort(addr string) (int, error) {
	c, err := net.ListenPacket("udp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// StartIPMISim writes lan.conf (with an absolute chassis_control path and
// its own port), sim.emu and chassis.sh into cfg.Dir, starts ipmi_sim and
// waits until it listens.
func StartIPMISim(ctx context.Context, cfg IPMIConfig) (*IPMISim, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1"
	}
	if cfg.User == "" {
		cfg.User = "admin"
	}
	if cfg.Password == "" {
		cfg.Password = "secret"
	}
	if cfg.IPMISim == "" {
		cfg.IPMISim = "ipmi_sim"
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	for _, s := range []string{dir, cfg.User, cfg.Password, cfg.Addr} {
		if err := quoteOK(s); err != nil {
			return nil, err
		}
	}
	if cfg.Port == 0 {
		if cfg.Port, err = FreeUDPPort(cfg.Addr); err != nil {
			return nil, err
		}
	}
	s := &IPMISim{cfg: cfg, Port: cfg.Port, PowerFile: filepath.Join(dir, "power"), LogFile: filepath.Join(dir, "ipmi_sim.log")}
	hook := func(cmd string) string {
		if cmd == "" {
			return ":"
		}
		return cmd
	}
	chassis := strings.NewReplacer("@STATE@", s.PowerFile, "@ONOFF@", hook(cfg.OnPowerOff), "@ONON@", hook(cfg.OnPowerOn)).Replace(chassisTemplate)
	chassisPath := filepath.Join(dir, "chassis.sh")
	lan := fmt.Sprintf(`name "sim"
set_working_mc 0x20
  startlan 1
    addr %s %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "%s"
  user 1 true  ""        "test" user     10       none md2 md5 straight
  user 2 true  "%s"   "%s" admin  10       none md2 md5 straight
`, cfg.Addr, cfg.Port, chassisPath, cfg.User, cfg.Password)
	files := map[string]struct {
		data string
		mode os.FileMode
	}{
		"chassis.sh": {chassis, 0o755},
		"lan.conf":   {lan, 0o644},
		"sim.emu":    {simEmu, 0o644},
		"power":      {"1\n", 0o644},
	}
	for name, f := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(f.data), f.mode); err != nil {
			return nil, err
		}
	}
	stateDir := filepath.Join(dir, "state")
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, err
	}
	argv := append(append([]string{}, cfg.Wrap...), cfg.IPMISim, "-c", filepath.Join(dir, "lan.conf"),
		"-f", filepath.Join(dir, "sim.emu"), "-s", stateDir, "-n")
	logf, err := os.Create(s.LogFile)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting ipmi_sim: %w", err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	if err := s.waitListening(ctx); err != nil {
		s.Stop()
		log, _ := os.ReadFile(s.LogFile)
		return nil, fmt.Errorf("%w; ipmi_sim log: %s", err, strings.TrimSpace(string(log)))
	}
	return s, nil
}

// waitListening polls the simulator's network namespace's UDP table until
// its port is bound.
func (s *IPMISim) waitListening(ctx context.Context) error {
	hexPort := fmt.Sprintf(":%04X ", s.Port)
	table := fmt.Sprintf("/proc/%d/net/udp", s.cmd.Process.Pid)
	for {
		if b, err := os.ReadFile(table); err == nil && strings.Contains(string(b), hexPort) {
			return nil
		}
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("ipmi_sim exited before listening on port %d: %v", s.Port, err)
		case <-ctx.Done():
			return fmt.Errorf("ipmi_sim not listening on port %d: %w", s.Port, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Params are the fence_ipmilan parameters that reach this BMC.
func (s *IPMISim) Params() map[string]string {
	return map[string]string{
		"ip":       s.cfg.Addr,
		"ipport":   strconv.Itoa(s.Port),
		"username": s.cfg.User,
		"password": s.cfg.Password,
	}
}

// Power reads the chassis power state: true is on.
func (s *IPMISim) Power() (bool, error) {
	b, err := os.ReadFile(s.PowerFile)
	if err != nil {
		return false, err
	}
	switch strings.TrimSpace(string(b)) {
	case "1":
		return true, nil
	case "0":
		return false, nil
	}
	return false, fmt.Errorf("power file holds %q", b)
}

// SetPower sets the chassis power state directly (without hooks).
func (s *IPMISim) SetPower(on bool) error {
	v := "0\n"
	if on {
		v = "1\n"
	}
	return os.WriteFile(s.PowerFile, []byte(v), 0o644)
}

// Pause stops the simulator (SIGSTOP): the BMC exists but answers nothing.
func (s *IPMISim) Pause() error { return syscall.Kill(-s.cmd.Process.Pid, syscall.SIGSTOP) }

// Resume continues a paused simulator.
func (s *IPMISim) Resume() error { return syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT) }

// Stop terminates the simulator and waits for it (SIGKILL after 5s).
func (s *IPMISim) Stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	pg := -s.cmd.Process.Pid
	_ = syscall.Kill(pg, syscall.SIGCONT)
	_ = syscall.Kill(pg, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(pg, syscall.SIGKILL)
		<-s.done
	}
	s.done <- errors.New("stopped")
	s.cmd = nil
	return nil
}
