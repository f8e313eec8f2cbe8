package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/fence"
)

type fenceConfirmOptions struct {
	g      *globals
	reason string
	yes    bool
}

func newFenceConfirmCmd(g *globals) *cobra.Command {
	o := &fenceConfirmOptions{g: g}
	cmd := &cobra.Command{
		Use:   "confirm NODE --reason TEXT [--yes]",
		Short: "Record that you verified NODE is down by hand (dangerous)",
		Long: `Record that an operator verified NODE is powered off or disconnected (pulled
its power cords, switched it off at the PDU) when its fence devices cannot do
it. The node then counts as fenced: running and queued off/reboot operations
for it end as confirmed and recovery of what it held may start.

If NODE is in fact running, that recovery gives two nodes the same data and
the same addresses: split brain and data loss. repctl asks you to type "yes"
unless --yes is given.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	f := cmd.Flags()
	f.StringVar(&o.reason, "reason", "", "how you verified the node is down (required; it goes in the history)")
	f.BoolVar(&o.yes, "yes", false, "do not ask: you have verified the node is down")
	return cmd
}

func (o *fenceConfirmOptions) run(cmd *cobra.Command, node string) error {
	if o.reason == "" {
		return usageError{fmt.Errorf("--reason is required: say how you verified %s is down (it goes in the history)", node)}
	}
	if !o.yes {
		fmt.Fprintf(o.g.errOut, "Is %s powered off or disconnected? Recovery will start.\nIf it is running, this causes split brain. Type yes to confirm: ", node)
		line, _ := bufio.NewReader(o.g.in).ReadString('\n')
		if !strings.HasSuffix(line, "\n") {
			fmt.Fprintln(o.g.errOut) // end the prompt's line when stdin ended
		}
		if strings.TrimSpace(line) != "yes" {
			return fmt.Errorf("not confirmed: nothing recorded (type yes, or pass --yes once you have verified %s is down)", node)
		}
	}
	var res fence.Result
	if err := o.g.client().Do(cmd.Context(), http.MethodPost, nodePath(node, "confirm"), fence.ConfirmRequest{Reason: o.reason}, &res); err != nil {
		return err
	}
	if o.g.json {
		return o.g.printJSON(res)
	}
	who := "-"
	if len(res.Requesters) > 0 {
		who = res.Requesters[0].Origin
	}
	fmt.Fprintf(o.g.out, "%s confirmed down by %s (op %d); it counts as fenced and recovery may proceed\n", node, who, res.ID)
	return nil
}
