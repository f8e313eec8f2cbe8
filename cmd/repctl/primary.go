package main

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

type primaryOptions struct {
	g     *globals
	force bool
}

func newPrimaryCmd(g *globals) *cobra.Command {
	o := &primaryOptions{g: g}
	cmd := &cobra.Command{
		Use:   "primary [--force] VOLUME",
		Short: "Promote this node to primary for a replicated volume",
		Long: `Promote this node to primary: its NBD export becomes writable (for new
connections) and its writes are replicated to the peers. The local data must be
UpToDate, and no connected peer may be primary (unless allow-two-primaries).

--force promotes Inconsistent or Outdated data anyway and makes it the valid
copy: peers then resync from this node. Use it to initialise a new volume, or
when you know this node's data is the one to keep.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v control.Volume
			if err := o.g.client().Do(cmd.Context(), http.MethodPost, "/v1/volumes/"+args[0]+"/primary", control.PrimaryRequest{Force: o.force}, &v); err != nil {
				return err
			}
			if o.g.json {
				return o.g.printJSON(v)
			}
			fmt.Fprintf(o.g.out, "%s: %s, disk %s\n", v.Name, v.Role, v.Disk)
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.force, "force", false, "promote even if the local data is not UpToDate (it becomes the valid copy)")
	return cmd
}
