package main

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

type lockLeaveOptions struct {
	lo    *lockOptions
	force int
}

func newLockLeaveCmd(lo *lockOptions) *cobra.Command {
	o := &lockLeaveOptions{lo: lo}
	cmd := &cobra.Command{
		Use:   "leave LOCKSPACE [--force N]",
		Short: "Leave a lockspace on this node",
		Long: `Leave LOCKSPACE on this node. --force is the kernel's release-force level:
0 refuses while this node holds or masters any lock, 1 while it holds locks
of its own, 2 drops its locks and leaves, 3 also does not wait for the other
nodes' acknowledgement. The others recover without fencing this node.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	cmd.Flags().IntVar(&o.force, "force", 0, "release-force level 0..3")
	return cmd
}

func (o *lockLeaveOptions) run(cmd *cobra.Command, ls string) error {
	if o.force < 0 || o.force > 3 {
		return usageError{fmt.Errorf("--force %d: want 0..3", o.force)}
	}
	path := fmt.Sprintf("/v1/dlm/lockspaces/%s?force=%d", url.PathEscape(ls), o.force)
	if err := o.lo.g.client().Do(cmd.Context(), http.MethodDelete, path, nil, nil); err != nil {
		return err
	}
	if o.lo.g.json {
		return o.lo.g.printJSON(map[string]string{"lockspace": ls, "state": "left"})
	}
	fmt.Fprintf(o.lo.g.out, "left %s\n", ls)
	return nil
}
