package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/fence"
)

type fenceNodeOptions struct {
	g       *globals
	action  string
	reason  string
	primary bool
}

func newFenceNodeCmd(g *globals) *cobra.Command {
	o := &fenceNodeOptions{g: g}
	cmd := &cobra.Command{
		Use:   "node NODE --reason TEXT [--action off|reboot|on]",
		Short: "Fence a node and wait for the result",
		Long: `Fence a node through its fence devices, level by level, and wait for the
result. off (the default) succeeds only when the device reports the node
off; reboot is a verified off, then on; on switches it back on (unfencing).
This can take minutes (timeouts, retries, verification). Interrupting repctl
does not stop the operation; 'repctl fence history NODE' shows its end.
Exits 0 when the node is fenced, 1 when it is not.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
	f := cmd.Flags()
	f.StringVar(&o.action, "action", "off", "off, reboot or on")
	f.StringVar(&o.reason, "reason", "", "why the node must be fenced (required; it goes in the history)")
	f.BoolVar(&o.primary, "primary", false, "the node holds a primary: wait fence.priority-delay first")
	return cmd
}

func (o *fenceNodeOptions) run(cmd *cobra.Command, node string) error {
	if o.reason == "" {
		return usageError{fmt.Errorf("--reason is required: say why %s must be fenced (it goes in the history)", node)}
	}
	if !fence.Action(o.action).Valid() {
		return usageError{fmt.Errorf("--action %q: want off, reboot or on", o.action)}
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var res fence.Result
	err := o.g.client().Do(ctx, http.MethodPost, nodePath(node, "fence"),
		fence.NodeRequest{Action: fence.Action(o.action), Reason: o.reason, TargetHoldsPrimary: o.primary}, &res)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted: the fence operation goes on in replicad; see 'repctl fence history %s'", node)
		}
		if failed, ok := failedResult(err); ok {
			if o.g.json {
				o.g.printJSON(failed)
			} else {
				failed.Error = "" // the error goes to stderr below
				printOperation(o.g.out, failed.Operation, failed.Merged)
			}
		}
		return err
	}
	if o.g.json {
		return o.g.printJSON(res)
	}
	printOperation(o.g.out, res.Operation, res.Merged)
	return nil
}
