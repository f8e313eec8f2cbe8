package main

import (
	"fmt"
	"net/http"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

type lvsVIPsOptions struct{ g *globals }

func newLVSVIPsCmd(g *globals) *cobra.Command {
	o := &lvsVIPsOptions{g: g}
	return &cobra.Command{
		Use:   "vips",
		Short: "Show whether each configured VIP is on this node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var vips map[string]control.LVSVIPState
			if err := o.g.client().Do(cmd.Context(), http.MethodGet, "/v1/lvs/vips", nil, &vips); err != nil {
				return err
			}
			if o.g.json {
				return o.g.printJSON(vips)
			}
			if len(vips) == 0 {
				fmt.Fprintln(o.g.out, "no VIPs configured")
				return nil
			}
			tw := tabwriter.NewWriter(o.g.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VIP\tADDRESS\tINTERFACE\tPRESENT\tLINK-UP\tPROBLEM")
			names := make([]string, 0, len(vips))
			for n := range vips {
				names = append(names, n)
			}
			slices.Sort(names)
			for _, n := range names {
				v := vips[n]
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n, v.Address, v.Interface, yesNo(v.Present), yesNo(v.LinkUp), dash(v.Problem))
			}
			return tw.Flush()
		},
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
