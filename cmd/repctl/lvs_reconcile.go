package main

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

type lvsReconcileOptions struct{ g *globals }

func newLVSReconcileCmd(g *globals) *cobra.Command {
	o := &lvsReconcileOptions{g: g}
	return &cobra.Command{
		Use:   "reconcile",
		Short: "Repair the kernel tables now and show what changed",
		Long: `Compare the kernel's tables with the running configuration and apply the
difference now (replicad also does this every resync-interval). Services it
does not own are left alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res control.LVSReconcileResult
			if err := o.g.client().Do(cmd.Context(), http.MethodPost, "/v1/lvs/reconcile", nil, &res); err != nil {
				return err
			}
			if o.g.json {
				return o.g.printJSON(res)
			}
			if len(res.Ops) == 0 {
				fmt.Fprintln(o.g.out, "kernel tables already match; nothing changed")
			}
			for _, op := range res.Ops {
				fmt.Fprintln(o.g.out, op)
			}
			return nil
		},
	}
}
