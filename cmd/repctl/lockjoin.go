package main

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/dlm/engine"
	"github.com/replicad/replicad/internal/control"
)

type lockJoinOptions struct {
	lo     *lockOptions
	lvbLen int
}

func newLockJoinCmd(lo *lockOptions) *cobra.Command {
	o := &lockJoinOptions{lo: lo}
	cmd := &cobra.Command{
		Use:   "join LOCKSPACE [--lvb-len 32]",
		Short: "Join (or create) a lockspace on this node until it is left or replicad stops",
		Long: `Join LOCKSPACE on this node. Locking in it starts once every member node has
recovered with this one ('repctl lock ls' shows the state). Lockspaces that
must exist whenever replicad runs belong in dlm.lockspaces instead.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	cmd.Flags().IntVar(&o.lvbLen, "lvb-len", 32, "lock value block length: 32 or 64 bytes, the same on every node")
	return cmd
}

func (o *lockJoinOptions) run(cmd *cobra.Command, ls string) error {
	if o.lvbLen != 32 && o.lvbLen != 64 {
		return usageError{fmt.Errorf("--lvb-len %d: want 32 or 64", o.lvbLen)}
	}
	var st engine.Status
	if err := o.lo.g.client().Do(cmd.Context(), http.MethodPost, "/v1/dlm/lockspaces", control.JoinRequest{Name: ls, LVBLen: o.lvbLen}, &st); err != nil {
		return err
	}
	if o.lo.g.json {
		return o.lo.g.printJSON(st)
	}
	fmt.Fprintf(o.lo.g.out, "joined %s (%s)\n", st.Lockspace, st.State)
	return nil
}
