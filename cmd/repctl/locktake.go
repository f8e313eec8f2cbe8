package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/dlm/locktable"
)

type lockTakeOptions struct {
	lo   *lockOptions
	t    lockTarget
	mode string
}

func newLockTakeCmd(lo *lockOptions) *cobra.Command {
	o := &lockTakeOptions{lo: lo}
	cmd := &cobra.Command{
		Use:   "take --lockspace L --resource R --mode MODE [--noqueue] [--timeout D]",
		Short: "Take a lock that stays held after repctl exits, until 'repctl lock release'",
		Long: `Take a lock in MODE (NL, CR, CW, PR, PW or EX) and exit, leaving it held by
this node (a PERSISTENT lock, kept as an orphan once repctl exits) until
'repctl lock release' or 'repctl lock convert' adopts it, or replicad stops.
For a lock held only while a command runs, use 'repctl lock run'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.t.flags(cmd)
	cmd.Flags().StringVar(&o.mode, "mode", "", "lock mode: NL, CR, CW, PR, PW or EX (required)")
	return cmd
}

// lockResult is the --json answer of take, convert and release.
type lockResult struct {
	Lockspace string `json:"lockspace"`
	Resource  string `json:"resource"`
	Mode      string `json:"mode"`
	LockID    string `json:"lock_id,omitempty"`
	State     string `json:"state"`
}

func (o *lockTakeOptions) run(cmd *cobra.Command) error {
	if err := o.t.check(); err != nil {
		return err
	}
	mode, err := parseMode("mode", o.mode)
	if err != nil {
		return err
	}
	c, err := o.lo.dial(cmd.Context())
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := o.t.waitCtx(cmd.Context())
	defer cancel()
	l, _, err := c.Lock(ctx, o.t.lockspace, o.t.resource, mode, locktable.Persistent|o.t.lockFlags(), nil)
	if err != nil {
		return lockError(err, &o.t, mode)
	}
	if o.lo.g.json {
		return o.lo.g.printJSON(lockResult{o.t.lockspace, o.t.resource, mode.String(), fmt.Sprintf("%08x", l.ID()), "granted"})
	}
	fmt.Fprintf(o.lo.g.out, "%v granted on %s (lock %08x); it stays held until 'repctl lock release --lockspace %s --resource %s --mode %v'\n",
		mode, &o.t, l.ID(), o.t.lockspace, o.t.resource, mode)
	return nil
}
