package main

import (
	"net/http"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/lvs"
)

type lvsEditServiceOptions struct {
	g      *globals
	svc    serviceFlags
	rename string
}

func newLVSEditServiceCmd(g *globals) *cobra.Command {
	o := &lvsEditServiceOptions{g: g}
	cmd := &cobra.Command{
		Use:   "edit-service NAME [flags]",
		Short: "Change a virtual service (only the options given)",
		Long: `Change a virtual service: the options given replace the service's, the
others stay. Real servers are changed with add-rs, edit-rs and delete-rs.`,
		Example: `  repctl lvs edit-service web --scheduler sh --persistence 300s/24
  repctl lvs edit-service web --check tcp --interval 2s --fall 2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := getService(cmd.Context(), o.g, args[0])
			if err != nil {
				return err
			}
			if err := o.svc.apply(cmd.Flags(), &sc); err != nil {
				return err
			}
			if cmd.Flags().Changed("name") {
				sc.Name = o.rename
			}
			var got lvs.ServiceConfig
			if err := o.g.client().Do(cmd.Context(), http.MethodPut, servicePath(args[0]), sc, &got); err != nil {
				return err
			}
			return edited(o.g, got, "service %s changed", got.Name)
		},
	}
	o.svc.register(cmd.Flags())
	cmd.Flags().StringVar(&o.rename, "name", "", "rename the service")
	return cmd
}
