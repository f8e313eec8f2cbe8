package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/daemon"
)

type runOptions struct {
	config     string
	cpuProfile string
}

func newRunCmd() *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon with a configuration file",
		Long: `Run the daemon. It reads the YAML configuration (see docs/configuration.md),
brings up every volume that has metadata, serves them over NBD and answers
repctl on the control socket. SIGTERM or SIGINT detach every volume cleanly
and exit.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.addFlags(cmd)
	return cmd
}

// addFlags gives cmd the daemon's flags; the root command has them too, so
// that "replicad --config FILE" runs the daemon.
func (o *runOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.config, "config", "c", "/etc/replicad/replicad.yaml", "configuration file")
	f.String("log-level", "", "log level: debug, info, warn or error (overrides log.level)")
	f.String("control-socket", "", "control socket path (overrides control.socket)")
	f.String("metrics-listen", "", "metrics address host:port, or \"\" to disable (overrides metrics.listen)")
	f.String("node-name", "", "node name (overrides node.name)")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (for benchmarks; off by default)")
}

func (o *runOptions) run(cmd *cobra.Command) error {
	cfg, err := loadConfig(o.config, nil, cmd.Flags())
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, os.Stderr)
	setMaxProcs(cfg.Node.MaxProcs, log)
	if o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	d, err := daemon.New(cfg, daemon.Options{Logger: log, Version: version, Ready: func(daemon.Info) { sdNotify("READY=1") }})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = d.Run(ctx)
	sdNotify("STOPPING=1")
	return err
}

// setMaxProcs applies node.max-procs (daemon.MaxProcs).
func setMaxProcs(setting int, log *slog.Logger) {
	_, envSet := os.LookupEnv("GOMAXPROCS")
	if n := daemon.MaxProcs(setting, envSet, runtime.GOMAXPROCS(0)); n > 0 {
		runtime.GOMAXPROCS(n)
	}
	log.Debug("go runtime", "gomaxprocs", runtime.GOMAXPROCS(0), "cpus", runtime.NumCPU())
}

// startCPUProfile profiles the process until stop is called, which the
// daemon does after it detached its volumes on SIGTERM or SIGINT.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// sdNotify tells systemd (Type=notify) about our state, if it is listening.
func sdNotify(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}
