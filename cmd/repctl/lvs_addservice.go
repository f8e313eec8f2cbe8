package main

import (
	"errors"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/lvs"
)

type lvsAddServiceOptions struct {
	g   *globals
	svc serviceFlags
	rs  []string
}

func newLVSAddServiceCmd(g *globals) *cobra.Command {
	o := &lvsAddServiceOptions{g: g}
	cmd := &cobra.Command{
		Use:   "add-service NAME --address VIP:PORT [--rs ADDRESS[:PORT][,weight=W] ...]",
		Short: "Add a virtual service",
		Example: `  repctl lvs add-service web --address 10.0.0.100:80 --scheduler rr --check http --path /healthz \
      --rs 10.0.1.1:8080 --rs 10.0.1.2:8080,weight=2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc := lvs.ServiceConfig{Name: args[0]}
			if !cmd.Flags().Changed("address") && !cmd.Flags().Changed("fwmark") {
				return usageError{errors.New("give --address VIP:PORT (or --fwmark N)")}
			}
			if err := o.svc.apply(cmd.Flags(), &sc); err != nil {
				return err
			}
			for _, s := range o.rs {
				rc, err := parseRSSpec(s)
				if err != nil {
					return err
				}
				sc.RealServers = append(sc.RealServers, rc)
			}
			var got lvs.ServiceConfig
			if err := o.g.client().Do(cmd.Context(), http.MethodPost, "/v1/lvs/services", sc, &got); err != nil {
				return err
			}
			return edited(o.g, got, "service %s added with %d real servers", got.Name, len(got.RealServers))
		},
	}
	o.svc.register(cmd.Flags())
	cmd.Flags().StringArrayVar(&o.rs, "rs", nil, "real server ADDRESS[:PORT][,weight=W][,forward=F][,tunnel-type=T][,tunnel-port=P] (repeat)")
	return cmd
}
