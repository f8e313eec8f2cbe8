package main

import (
	"net/http"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/lvs"
)

type lvsDeleteRSOptions struct{ g *globals }

func newLVSDeleteRSCmd(g *globals) *cobra.Command {
	o := &lvsDeleteRSOptions{g: g}
	return &cobra.Command{
		Use:   "delete-rs SERVICE ADDRESS[:PORT]",
		Short: "Remove a real server from a virtual service (edit-rs --weight 0 drains it first)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var got lvs.ServiceConfig
			if err := o.g.client().Do(cmd.Context(), http.MethodDelete, servicePath(args[0], args[1]), nil, &got); err != nil {
				return err
			}
			return edited(o.g, got, "real server %s removed from service %s", args[1], args[0])
		},
	}
}
