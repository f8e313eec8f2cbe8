package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

type upOptions struct {
	g   *globals
	all bool
}

func newUpCmd(g *globals) *cobra.Command {
	o := &upOptions{g: g}
	cmd := &cobra.Command{
		Use:   "up VOLUME|--all",
		Short: "Attach a volume and serve it over NBD",
		RunE: func(cmd *cobra.Command, args []string) error {
			names, err := volumeArgs(cmd.Context(), o.g, args, o.all)
			if err != nil {
				return err
			}
			var done []control.Volume
			for _, n := range names {
				v, err := o.g.client().Up(cmd.Context(), n)
				if err != nil {
					return err
				}
				done = append(done, v)
				if !o.g.json {
					fmt.Fprintf(o.g.out, "%s: up, %s\n", v.Name, exportsText(v))
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

func exportsText(v control.Volume) string {
	if len(v.Exports) == 0 {
		return "not exported"
	}
	return "exported as " + v.Exports[0]
}
