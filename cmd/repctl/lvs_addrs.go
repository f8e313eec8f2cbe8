package main

import (
	"net/http"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/lvs"
)

type lvsAddRSOptions struct {
	g  *globals
	rs rsFlags
}

func newLVSAddRSCmd(g *globals) *cobra.Command {
	o := &lvsAddRSOptions{g: g}
	cmd := &cobra.Command{
		Use:   "add-rs SERVICE ADDRESS[:PORT] [--weight W] [--forward F] [--check TYPE ...]",
		Short: "Add a real server to a virtual service",
		Long: `Add a real server to a virtual service. A bare address takes the service's
port. Check options give the server its own health check, starting from a
copy of the service's.`,
		Example: "  repctl lvs add-rs web 10.0.1.3:8080 --weight 2",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := getService(cmd.Context(), o.g, args[0])
			if err != nil {
				return err
			}
			rc := lvs.RealServerConfig{Address: args[1]}
			o.rs.apply(cmd.Flags(), sc, &rc)
			var got lvs.ServiceConfig
			if err := o.g.client().Do(cmd.Context(), http.MethodPost, servicePath(args[0])+"/real-servers", rc, &got); err != nil {
				return err
			}
			return edited(o.g, got, "real server %s added to service %s", args[1], args[0])
		},
	}
	o.rs.register(cmd.Flags())
	return cmd
}
