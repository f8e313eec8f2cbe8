package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

type downOptions struct {
	g   *globals
	all bool
}

func newDownCmd(g *globals) *cobra.Command {
	o := &downOptions{g: g}
	cmd := &cobra.Command{
		Use:   "down VOLUME|--all",
		Short: "Stop serving a volume and detach it cleanly",
		Long: `Close the volume's NBD connections (requests in flight finish), flush it,
write its bitmaps and mark its activity log clean, then close its devices.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := volumeArgs(cmd.Context(), o.g, args, o.all)
			if err != nil {
				return err
			}
			var done []control.Volume
			for _, n := range names {
				v, err := o.g.client().Down(cmd.Context(), n)
				if err != nil {
					return err
				}
				done = append(done, v)
				if !o.g.json {
					fmt.Fprintf(o.g.out, "%s: down\n", v.Name)
				}
			}
			if o.g.json {
				return o.g.printJSON(done)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.all, "all", false, "every configured volume")
	return cmd
}
