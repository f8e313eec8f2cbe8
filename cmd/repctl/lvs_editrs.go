package main

import (
	"net/http"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/lvs"
)

type lvsEditRSOptions struct {
	g       *globals
	rs      rsFlags
	address string
}

func newLVSEditRSCmd(g *globals) *cobra.Command {
	o := &lvsEditRSOptions{g: g}
	cmd := &cobra.Command{
		Use:   "edit-rs SERVICE ADDRESS[:PORT] [--weight W] [flags]",
		Short: "Change a real server (only the options given); --weight 0 drains it",
		Example: `  repctl lvs edit-rs web 10.0.1.1 --weight 0          # drain: no new connections
  repctl lvs edit-rs web 10.0.1.1 --check inherit     # back to the service's check`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := getService(cmd.Context(), o.g, args[0])
			if err != nil {
				return err
			}
			i, err := findRealServer(sc, args[1])
			if err != nil {
				return err
			}
			rc := sc.RealServers[i]
			o.rs.apply(cmd.Flags(), sc, &rc)
			if cmd.Flags().Changed("address") {
				rc.Address = o.address
			}
			var got lvs.ServiceConfig
			if err := o.g.client().Do(cmd.Context(), http.MethodPut, servicePath(args[0], args[1]), rc, &got); err != nil {
				return err
			}
			return edited(o.g, got, "real server %s of service %s changed", rc.Address, args[0])
		},
	}
	o.rs.register(cmd.Flags())
	cmd.Flags().StringVar(&o.address, "address", "", "move the real server to ADDRESS[:PORT]")
	return cmd
}
