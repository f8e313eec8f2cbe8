package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/bytesize"
	"github.com/replicad/replicad/internal/daemon"
	"github.com/replicad/replicad/internal/freeport"
	"github.com/replicad/replicad/replication"
)

//go:embed demo.yaml
var demoConfig string

type demoOptions struct {
	dir      string
	port     int
	size     string
	nodes    int
	protocol string
}

func newDemoCmd() *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo [--nodes N [--protocol A|B|C]] [--dir DIR]",
		Short: "Run replicad on localhost (one node, or a replicated cluster), with no configuration to write",
		Long: `Run replicad on an embedded configuration: one volume backed by a sparse file,
served over NBD on 127.0.0.1 (port 10809, or a free port if that one is taken)
and on a unix socket. Without --dir everything lives in a temporary directory
that is removed when the demo stops; with --dir the volume is kept and reused.

With --nodes N (2 or more), the demo writes one configuration per node under
DIR/<node>/ and starts each node as its own "replicad --config FILE" process on
127.0.0.1, with one volume r0 replicated between them (--protocol, default C)
and the first node primary. After the initial sync it prints one line per node:

  node=<name> pid=<pid> config=<path> socket=<path> nbd=<uri>

Kill a node by its pid and start it again with "replicad --config <path>": it
comes back as secondary and resyncs. Ctrl-C stops the nodes the demo started.
The NBD ports start at --port (the next ones for the next nodes, free ones
where those are taken).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("protocol") && o.nodes < 2 {
				return fmt.Errorf("--protocol needs --nodes 2 or more")
			}
			if o.nodes != 1 {
				return o.runCluster(cmd.OutOrStdout())
			}
			return o.run(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.dir, "dir", "", "directory for the volume, sockets and log (default: a new temporary directory)")
	cmd.Flags().IntVar(&o.port, "port", 10809, "NBD TCP port on 127.0.0.1 (0 picks a free one)")
	cmd.Flags().StringVar(&o.size, "size", "1GiB", "size of the demo volume when it is created")
	cmd.Flags().IntVar(&o.nodes, "nodes", 1, "number of nodes; 2 or more runs a replicated cluster, one process per node")
	cmd.Flags().StringVar(&o.protocol, "protocol", "C", "replication protocol with --nodes: A, B or C")
	return cmd
}

func (o *demoOptions) run(out io.Writer) error {
	size, err := bytesize.Parse(o.size)
	if err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	dir, temporary := o.dir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "replicad-demo-"); err != nil {
			return err
		}
		temporary = true
		defer os.RemoveAll(dir)
	} else {
		if dir, err = filepath.Abs(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	port := o.port
	if port != 0 && !freeport.Free(port) {
		port = 0
	}
	doc := strings.NewReplacer("{{DIR}}", dir, "{{PORT}}", strconv.Itoa(port), "size: 1GiB", "size: "+strconv.FormatInt(size, 10)).Replace(demoConfig)
	cfg, err := loadConfig("", strings.NewReader(doc), nil)
	if err != nil {
		return fmt.Errorf("embedded demo configuration: %w", err)
	}
	logPath := filepath.Join(dir, "replicad.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := newLogger(cfg.Log, logFile)
	setMaxProcs(cfg.Node.MaxProcs, log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	vol := cfg.Volumes[0]
	d, err := daemon.New(cfg, daemon.Options{Logger: log, Version: version, Ready: func(info daemon.Info) {
		fmt.Fprintf(out, "replicad demo is running (pid %d).\n", os.Getpid())
		fmt.Fprintf(out, "Volume %q: %s, backed by %s\n\n", vol.Name, bytesize.Format(size), vol.Device)
		for _, l := range info.NBD {
			if l.Network == "tcp" {
				fmt.Fprintln(out, l.ExportURI(vol.Name))
			}
		}
		for _, l := range info.NBD {
			if l.Network == "unix" {
				fmt.Fprintf(out, "  (also %s)\n", l.ExportURI(vol.Name))
			}
		}
		fmt.Fprintf(out, "\nTry:     nbdinfo %s\n", info.NBD[0].ExportURI(vol.Name))
		fmt.Fprintf(out, "         repctl --socket %s status\n", info.ControlSocket)
		if info.MetricsURL != "" {
			fmt.Fprintf(out, "Metrics: %s\n", info.MetricsURL)
		}
		fmt.Fprintf(out, "Log:     %s\n", logPath)
		fmt.Fprintf(out, "Stop:    press Ctrl-C (or kill %d); the volume is detached cleanly", os.Getpid())
		if temporary {
			fmt.Fprintf(out, " and %s removed", dir)
		}
		fmt.Fprintln(out, ".")
	}})
	if err != nil {
		return err
	}
	if _, err := d.CreateMD(vol.Name, false); err != nil && !errors.Is(err, replication.ErrMetadataExists) {
		return fmt.Errorf("create the demo volume: %w", err)
	}
	if err := d.Run(ctx); err != nil {
		return err
	}
	fmt.Fprintln(out, "replicad demo stopped.")
	return nil
}
