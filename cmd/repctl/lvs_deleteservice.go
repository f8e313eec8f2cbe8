package main

import (
	"net/http"

	"github.com/spf13/cobra"
)

type lvsDeleteServiceOptions struct{ g *globals }

func newLVSDeleteServiceCmd(g *globals) *cobra.Command {
	o := &lvsDeleteServiceOptions{g: g}
	return &cobra.Command{
		Use:   "delete-service NAME",
		Short: "Remove a virtual service from the kernel and the running configuration",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.g.client().Do(cmd.Context(), http.MethodDelete, servicePath(args[0]), nil, nil); err != nil {
				return err
			}
			return edited(o.g, map[string]string{"deleted": args[0]}, "service %s deleted", args[0])
		},
	}
}
