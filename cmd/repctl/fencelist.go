package main

import (
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/fence"
)

type fenceListOptions struct{ g *globals }

func newFenceListCmd(g *globals) *cobra.Command {
	o := &fenceListOptions{g: g}
	return &cobra.Command{
		Use:   "list",
		Short: "List the fence devices and the nodes each can fence",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
}

func (o *fenceListOptions) run(cmd *cobra.Command) error {
	var res fence.DevicesResponse
	if err := o.g.client().Do(cmd.Context(), http.MethodGet, "/v1/fence/devices", nil, &res); err != nil {
		return err
	}
	if o.g.json {
		return o.g.printJSON(res)
	}
	w := o.g.out
	if len(res.Devices) == 0 {
		fmt.Fprintln(w, "no fence devices configured")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tAGENT\tTARGETS\tTIMEOUT\tRETRIES\tDELAY")
	for _, d := range res.Devices {
		agent := d.AgentName
		if d.Agent != fence.AgentExec {
			agent = d.Agent
		}
		var targets []string
		for _, t := range d.Targets {
			if t.Port == t.Target {
				targets = append(targets, t.Target)
			} else {
				targets = append(targets, t.Target+":"+t.Port)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", d.Name, agent, dash(strings.Join(targets, ",")), d.Timeout, d.Retries, delayText(d))
	}
	tw.Flush()
	fmt.Fprintf(w, "fenceable nodes: %s\n", strings.Join(res.Targets, ", "))
	return nil
}

// delayText is a device's delay before its first power call: "0s", "5s",
// or "2s+0..5s" with a random part.
func delayText(d fence.DeviceInfo) string {
	if d.DelayMax == 0 {
		return d.DelayBase.String()
	}
	return fmt.Sprintf("%s+0..%s", d.DelayBase, d.DelayMax)
}
