package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/bytesize"
)

type createMDOptions struct {
	g     *globals
	force bool
}

func newCreateMDCmd(g *globals) *cobra.Command {
	o := &createMDOptions{g: g}
	cmd := &cobra.Command{
		Use:   "create-md VOLUME",
		Short: "Initialise a volume's metadata (generation UUIDs, bitmaps, activity log)",
		Long: `Initialise the metadata of a configured volume that is down. Internal metadata
takes space at the end of the backing device; external metadata lives in the
configured file, which is created if missing. Existing metadata is never
overwritten without --force.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := o.g.client().CreateMD(cmd.Context(), args[0], o.force)
			if err != nil {
				return err
			}
			if o.g.json {
				return o.g.printJSON(r)
			}
			where := "external"
			if r.Internal {
				where = "internal"
			}
			fmt.Fprintf(o.g.out, "created %s metadata for %s: %s of data, %s of metadata, %d peer slots, disk %s\n",
				where, r.Volume, bytesize.Format(r.DataSize), bytesize.Format(r.MetaSize), r.MaxPeers, r.Disk)
			fmt.Fprintf(o.g.out, "bring it up with: repctl up %s\n", r.Volume)
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.force, "force", false, "overwrite existing metadata (its bitmaps and generation history are lost)")
	return cmd
}
