package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

type verifyOptions struct {
	g      *globals
	noWait bool
}

func newVerifyCmd(g *globals) *cobra.Command {
	o := &verifyOptions{g: g}
	cmd := &cobra.Command{
		Use:   "verify [--no-wait] VOLUME [PEER]",
		Short: "Compare every block with a peer (online verify)",
		Long: `Compare every block of the volume with the peer's copy by digest, while the
volume stays in use. Blocks that differ are marked out of sync on both nodes
and resynced right after (from the primary). Prints the number of differences;
exits 1 if there were any.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args) },
	}
	cmd.Flags().BoolVar(&o.noWait, "no-wait", false, "start the verify and return")
	return cmd
}

func (o *verifyOptions) run(ctx context.Context, args []string) error {
	req := control.VerifyRequest{}
	if len(args) == 2 {
		req.Peer = args[1]
	}
	c := o.g.client()
	var v control.Volume
	if err := c.Do(ctx, http.MethodPost, "/v1/volumes/"+args[0]+"/verify", req, &v); err != nil {
		return err
	}
	peer := req.Peer
	if peer == "" && len(v.Peers) == 1 {
		peer = v.Peers[0].Node
	}
	if o.noWait {
		fmt.Fprintf(o.g.out, "%s: verify with %s started\n", args[0], peer)
		return nil
	}
	var bar *progressbar.ProgressBar
	for {
		var p *control.Peer
		for i := range v.Peers {
			if v.Peers[i].Node == peer {
				p = &v.Peers[i]
			}
		}
		if p == nil {
			return fmt.Errorf("peer %s vanished from the status", peer)
		}
		if p.Verify == nil {
			if bar != nil {
				bar.Finish()
				fmt.Fprintln(o.g.out)
			}
			if p.LastVerify == nil {
				return fmt.Errorf("the verify with %s ended without a result (connection %s: %s)", peer, p.Connection, p.LastError)
			}
			if o.g.json {
				return o.g.printJSON(p.LastVerify)
			}
			fmt.Fprintf(o.g.out, "%s: verified %d bytes against %s: %d blocks differ\n", args[0], p.LastVerify.CheckedBytes, peer, p.LastVerify.Differences)
			if p.LastVerify.Differences > 0 {
				return fmt.Errorf("%d blocks differed; they are marked out of sync and being resynced (repctl wait-sync %s)", p.LastVerify.Differences, args[0])
			}
			return nil
		}
		if !o.g.json {
			if bar == nil {
				bar = progressbar.NewOptions64(p.Verify.TotalBytes, progressbar.OptionSetWriter(o.g.out),
					progressbar.OptionSetDescription(args[0]+" verify"), progressbar.OptionShowBytes(true), progressbar.OptionSetWidth(30))
			}
			bar.Set64(p.Verify.DoneBytes)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
		// A fresh value: Unmarshal leaves fields the answer omits (verify
		// progress, once done) as they were.
		v = control.Volume{}
		if err := c.Do(ctx, http.MethodGet, "/v1/volumes/"+args[0], nil, &v); err != nil {
			return err
		}
	}
}
