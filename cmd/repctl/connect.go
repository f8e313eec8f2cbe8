package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

type connectOptions struct {
	g             *globals
	discardMyData bool
	connect       bool
}

func newConnectCmd(g *globals) *cobra.Command {
	o := &connectOptions{g: g, connect: true}
	cmd := &cobra.Command{
		Use:   "connect [--discard-my-data] VOLUME [PEER]",
		Short: "Let a StandAlone volume connect to its peers again",
		Long: `Let the volume connect to its peers (or to PEER) again after a disconnect or
a refused handshake (split brain, configuration mismatch).

--discard-my-data resolves a split brain on this node, the victim: its changes
since the split are discarded and it resyncs from the peer. Run it on the node
whose changes should be lost, never on both.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: o.run,
	}
	cmd.Flags().BoolVar(&o.discardMyData, "discard-my-data", false, "resolve a split brain by discarding this node's changes")
	return cmd
}

func newDisconnectCmd(g *globals) *cobra.Command {
	o := &connectOptions{g: g, connect: false}
	return &cobra.Command{
		Use:   "disconnect VOLUME [PEER]",
		Short: "Disconnect a volume from its peers (or PEER) and keep it StandAlone",
		Long: `Close the connection to the peers (or PEER) and stop reconnecting. A primary
records its writes in the peers' bitmaps meanwhile; repctl connect resyncs them.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: o.run,
	}
}

func (o *connectOptions) run(cmd *cobra.Command, args []string) error {
	req := control.ConnectRequest{DiscardMyData: o.discardMyData}
	if len(args) == 2 {
		req.Peer = args[1]
	}
	verb := "disconnect"
	if o.connect {
		verb = "connect"
	}
	var v control.Volume
	if err := o.g.client().Do(cmd.Context(), http.MethodPost, "/v1/volumes/"+args[0]+"/"+verb, req, &v); err != nil {
		return err
	}
	if !o.connect {
		// The daemon answers before the link is closed: show the state
		// the disconnect leads to, not the one it interrupts.
		o.waitClosed(cmd.Context(), &v, req.Peer)
	}
	if o.g.json {
		return o.g.printJSON(v)
	}
	for _, p := range v.Peers {
		fmt.Fprintf(o.g.out, "%s: peer %s %s\n", v.Name, p.Node, p.Connection)
	}
	return nil
}

// waitClosed polls the volume for up to 5s until no peer it disconnected
// (peer, or every peer) is still Connected; v is left with the last answer.
func (o *connectOptions) waitClosed(ctx context.Context, v *control.Volume, peer string) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		connected := false
		for _, p := range v.Peers {
			connected = connected || ((peer == "" || p.Node == peer) && p.Connection == "Connected")
		}
		if !connected {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		var nv control.Volume
		if err := o.g.client().Do(ctx, http.MethodGet, "/v1/volumes/"+v.Name, nil, &nv); err != nil {
			return
		}
		*v = nv
	}
}
