package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

type lockFenceConfirmOptions struct {
	lo  *lockOptions
	yes bool
}

func newLockFenceConfirmCmd(lo *lockOptions) *cobra.Command {
	o := &lockFenceConfirmOptions{lo: lo}
	cmd := &cobra.Command{
		Use:   "fence-confirm NODE [--yes]",
		Short: "Tell the DLM that NODE, which failed, has been fenced (dangerous)",
		Long: `Tell the DLM that NODE (a name or id from cluster.nodes) is powered off or
otherwise stopped since it failed. The locks it held are then recovered:
requests waiting for them are granted. Give it on any surviving node; the
others learn it from this one.

Where a fence section is configured, fencing does this by itself: a
successful 'repctl fence node NODE', or 'repctl fence confirm NODE' (which
also records who confirmed in the fence history), is passed to the DLM.
Use this command where fencing is not configured.

If NODE is in fact running, two nodes hold the same locks and corrupt the
data they protect. repctl asks you to type "yes" unless --yes is given.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	cmd.Flags().BoolVar(&o.yes, "yes", false, "do not ask: you have verified the node is down")
	return cmd
}

func (o *lockFenceConfirmOptions) run(cmd *cobra.Command, node string) error {
	g := o.lo.g
	if !o.yes {
		fmt.Fprintf(g.errOut, "Is %s powered off or its replicad stopped for good? Its locks will be recovered.\nIf it is running, the data its locks protect gets corrupted. Type yes to confirm: ", node)
		line, _ := bufio.NewReader(g.in).ReadString('\n')
		if !strings.HasSuffix(line, "\n") {
			fmt.Fprintln(g.errOut)
		}
		if strings.TrimSpace(line) != "yes" {
			return fmt.Errorf("not confirmed: nothing changed (type yes, or pass --yes once you have verified %s is down)", node)
		}
	}
	var dn control.DLMNode
	if err := g.client().Do(cmd.Context(), http.MethodPost, "/v1/dlm/fence-confirm", control.FenceConfirmRequest{Node: node}, &dn); err != nil {
		return err
	}
	if g.json {
		return g.printJSON(dn)
	}
	fmt.Fprintf(g.out, "%s (node id %d) confirmed fenced for the DLM: now %s; lockspaces waiting for it recover ('repctl lock ls')\n", dn.Name, dn.ID, dn.State)
	return nil
}
