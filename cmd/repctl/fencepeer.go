package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/fence"
)

type fencePeerOptions struct {
	g   *globals
	env func() []string
}

func newFencePeerCmd(g *globals) *cobra.Command {
	o := &fencePeerOptions{g: g, env: os.Environ}
	return &cobra.Command{
		Use:   "peer",
		Short: "Fence-peer handler for replication and DRBD: environment in, DRBD exit code out",
		Long: `The fence-peer handler. It reads the request from the environment
(REPLICAD_RESOURCE, REPLICAD_PEER_NODE, REPLICAD_FENCING, REPLICAD_PEER_ROLE,
REPLICAD_FENCE_ACTION, REPLICAD_LOCAL_NODE, or DRBD's DRBD_RESOURCE,
DRBD_PEER_NODE_ID and DRBD_NODE_ID_<id>), asks replicad and exits with the
code DRBD reads: 7 the peer was fenced, 5 unreachable and not fenced
(resource-only), 4 outdated, 3 inconsistent, 6 outdate yourself, 1 fencing
failed (I/O stays frozen). Any failure of repctl itself, the daemon not
running included, exits 1. See docs/fencing.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
}

func (o *fencePeerOptions) run(cmd *cobra.Command) error {
	req, err := fence.ParsePeerEnv(o.env())
	if err != nil {
		return exitError{code: int(fence.PeerFenceFailed), err: err}
	}
	var res fence.PeerResult
	if err := o.g.client().Do(cmd.Context(), http.MethodPost, "/v1/fence/peer", req, &res); err != nil {
		// Never an answer DRBD would act on: exit 1 keeps I/O frozen.
		return exitError{code: int(fence.PeerFenceFailed), err: fmt.Errorf("fence-peer for %s: %w", req.Peer, err)}
	}
	if o.g.json {
		o.g.printJSON(res)
	} else {
		fmt.Fprintf(o.g.out, "fence-peer %s on %s: exit %d (%s): %s\n", req.Resource, req.Peer, res.Exit, res.Exit, res.Detail)
	}
	switch res.Exit {
	case fence.PeerFenceFailed, fence.PeerInconsistent, fence.PeerOutdated, fence.PeerUnreachable, fence.PeerIsPrimary, fence.PeerStonithed:
		return exitError{code: int(res.Exit)}
	}
	return exitError{code: int(fence.PeerFenceFailed), err: fmt.Errorf("replicad answered exit %d, which is not a fence-peer answer", res.Exit)}
}
