package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

type lockConvertOptions struct {
	lo       *lockOptions
	t        lockTarget
	from, to string
}

func newLockConvertCmd(lo *lockOptions) *cobra.Command {
	o := &lockConvertOptions{lo: lo}
	cmd := &cobra.Command{
		Use:   "convert --lockspace L --resource R --from MODE --to MODE [--noqueue] [--timeout D]",
		Short: "Convert a lock taken with 'repctl lock take' to another mode",
		Long: `Adopt the lock this node holds on R in mode --from (taken with 'repctl lock
take'), convert it to --to and exit; it stays held in the new mode. If the
conversion is not granted (--noqueue, --timeout) the lock keeps --from.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.t.flags(cmd)
	cmd.Flags().StringVar(&o.from, "from", "", "the mode the lock is held in (required)")
	cmd.Flags().StringVar(&o.to, "to", "", "the mode to convert to (required)")
	return cmd
}

func (o *lockConvertOptions) run(cmd *cobra.Command) error {
	if err := o.t.check(); err != nil {
		return err
	}
	from, err := parseMode("from", o.from)
	if err != nil {
		return err
	}
	to, err := parseMode("to", o.to)
	if err != nil {
		return err
	}
	c, l, err := o.lo.adopt(cmd.Context(), &o.t, from)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := o.t.waitCtx(cmd.Context())
	defer cancel()
	if _, err := l.Convert(ctx, to, o.t.lockFlags(), nil); err != nil {
		return lockError(err, &o.t, to)
	}
	if o.lo.g.json {
		return o.lo.g.printJSON(lockResult{o.t.lockspace, o.t.resource, to.String(), fmt.Sprintf("%08x", l.ID()), "granted"})
	}
	fmt.Fprintf(o.lo.g.out, "%s converted %v -> %v (lock %08x)\n", &o.t, from, to, l.ID())
	return nil
}
