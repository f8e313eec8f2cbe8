package main

import (
	"context"
	"fmt"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

type waitSyncOptions struct {
	g        *globals
	interval time.Duration
	quiet    bool
}

func newWaitSyncCmd(g *globals) *cobra.Command {
	o := &waitSyncOptions{g: g}
	cmd := &cobra.Command{
		Use:   "wait-sync VOLUME",
		Short: "Wait until a volume is in sync with every peer, showing resync progress",
		Long: `Wait until every peer of the volume is Connected, Established and UpToDate,
with a progress bar while a resync runs. Exits 0 when in sync; fails if a peer
is StandAlone (it will not connect by itself).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args[0]) },
	}
	cmd.Flags().DurationVar(&o.interval, "interval", 500*time.Millisecond, "how often to poll the status")
	cmd.Flags().BoolVar(&o.quiet, "quiet", false, "no progress bar")
	return cmd
}

func (o *waitSyncOptions) run(ctx context.Context, name string) error {
	c := o.g.client()
	var bar *progressbar.ProgressBar
	defer func() {
		if bar != nil {
			bar.Finish()
			fmt.Fprintln(o.g.out)
		}
	}()
	for {
		var v control.Volume
		if err := c.Do(ctx, "GET", "/v1/volumes/"+name, nil, &v); err != nil {
			return err
		}
		if v.State != control.StateUp {
			return fmt.Errorf("volume %s is %s", name, v.State)
		}
		if len(v.Peers) == 0 {
			return fmt.Errorf("volume %s has no peers", name)
		}
		done := true
		var rs *control.Resync
		for _, p := range v.Peers {
			if p.Connection == "StandAlone" {
				return fmt.Errorf("peer %s is StandAlone (%s); run `repctl connect %s`", p.Node, p.LastError, name)
			}
			if p.Connection != "Connected" || p.Replication != "Established" || p.Disk != "UpToDate" || v.Disk != "UpToDate" {
				done = false
			}
			if p.Resync != nil {
				rs = p.Resync
			}
		}
		if done {
			if !o.quiet && !o.g.json {
				if bar != nil {
					bar.Set64(bar.GetMax64())
				}
				fmt.Fprintf(o.g.out, "%s: in sync\n", name)
			}
			return nil
		}
		if rs != nil && !o.quiet && !o.g.json {
			if bar == nil {
				bar = progressbar.NewOptions64(rs.TotalBytes, progressbar.OptionSetWriter(o.g.out),
					progressbar.OptionSetDescription(name+" resync"), progressbar.OptionShowBytes(true),
					progressbar.OptionShowCount(), progressbar.OptionSetWidth(30), progressbar.OptionThrottle(200*time.Millisecond))
			}
			bar.Set64(rs.DoneBytes)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.interval):
		}
	}
}
