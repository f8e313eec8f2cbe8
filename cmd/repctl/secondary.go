package main

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

type secondaryOptions struct{ g *globals }

func newSecondaryCmd(g *globals) *cobra.Command {
	o := &secondaryOptions{g: g}
	return &cobra.Command{
		Use:   "secondary VOLUME",
		Short: "Demote this node to secondary for a replicated volume",
		Long: `Demote this node to secondary. A primary with NBD connections open is not
demoted: unmount and disconnect the clients first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v control.Volume
			if err := o.g.client().Do(cmd.Context(), http.MethodPost, "/v1/volumes/"+args[0]+"/secondary", nil, &v); err != nil {
				return err
			}
			if o.g.json {
				return o.g.printJSON(v)
			}
			fmt.Fprintf(o.g.out, "%s: %s\n", v.Name, v.Role)
			return nil
		},
	}
}
