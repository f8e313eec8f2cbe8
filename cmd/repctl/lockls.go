package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

type lockLsOptions struct{ lo *lockOptions }

func newLockLsCmd(lo *lockOptions) *cobra.Command {
	o := &lockLsOptions{lo: lo}
	return &cobra.Command{
		Use:   "ls",
		Short: "List the nodes as the DLM sees them and this node's lockspaces (dlm_tool ls)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
}

func (o *lockLsOptions) run(cmd *cobra.Command) error {
	info, err := o.lo.info(cmd.Context())
	if err != nil {
		return err
	}
	g := o.lo.g
	if g.json {
		return g.printJSON(info)
	}
	quorum := "quorate"
	if !info.Quorate {
		quorum = "NOT quorate: lockspaces wait"
	}
	fmt.Fprintf(g.out, "DLM on %s (node id %d), %s; peers on %s, clients on %s\n\n", info.Node, info.NodeID, quorum, info.Listen, info.Socket)
	tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tID\tSTATE\tDLM ADDRESS")
	for _, n := range info.Nodes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s", n.Name, n.ID, n.State, n.Address)
		if n.NeedsFence {
			fmt.Fprintf(tw, "\tneeds fencing: 'repctl fence node %s', or once you verified it is down 'repctl lock fence-confirm %s'", n.Name, n.Name)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(g.out)
	if len(info.Lockspaces) == 0 {
		fmt.Fprintln(g.out, "no lockspaces joined (repctl lock join NAME, or dlm.lockspaces in the configuration)")
		return nil
	}
	names := nodeNames(info)
	tw = tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOCKSPACE\tSTATE\tGENERATION\tMEMBERS\tLOCKS\tMASTERED\tLVB")
	for _, s := range info.Lockspaces {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\n", s.Lockspace, s.State, s.Generation, namesOf(s.Members, names), s.Locks, s.Mastered, s.LVBLen)
	}
	tw.Flush()
	for _, s := range info.Lockspaces {
		if s.Detail != "" {
			fmt.Fprintf(g.out, "%s: %s", s.Lockspace, s.Detail)
			if len(s.NeedFence) > 0 {
				fmt.Fprintf(g.out, " (%s)", namesOf(s.NeedFence, names))
			}
			fmt.Fprintln(g.out)
		}
	}
	return nil
}
