package main

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/dlm/engine"
)

type lockDumpOptions struct{ lo *lockOptions }

func newLockDumpCmd(lo *lockOptions) *cobra.Command {
	o := &lockDumpOptions{lo: lo}
	return &cobra.Command{
		Use:   "dump LOCKSPACE",
		Short: "Show a lockspace's resources, masters, LVBs and lock queues (dlm_tool lockdump)",
		Long: `Show the resources of LOCKSPACE this node knows: those it masters (Master
Copy: every node's locks, in the granted, conversion and waiting queues) and
those it holds locks on (Local Copy: its own locks, and who masters them).
Remote locks show the owning node's id ('repctl lock ls' names the ids).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
}

func (o *lockDumpOptions) run(cmd *cobra.Command, ls string) error {
	var d engine.Dump
	if err := o.lo.g.client().Do(cmd.Context(), http.MethodGet, "/v1/dlm/lockspaces/"+url.PathEscape(ls)+"/dump", nil, &d); err != nil {
		return err
	}
	if o.lo.g.json {
		return o.lo.g.printJSON(d)
	}
	fmt.Fprint(o.lo.g.out, d.Text())
	return nil
}
