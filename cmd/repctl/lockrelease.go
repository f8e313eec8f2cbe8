package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

type lockReleaseOptions struct {
	lo   *lockOptions
	t    lockTarget
	mode string
}

func newLockReleaseCmd(lo *lockOptions) *cobra.Command {
	o := &lockReleaseOptions{lo: lo}
	cmd := &cobra.Command{
		Use:   "release --lockspace L --resource R --mode MODE",
		Short: "Release a lock taken with 'repctl lock take'",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.t.lockspace, "lockspace", "", "the lockspace (required)")
	f.StringVar(&o.t.resource, "resource", "", "the resource name (required)")
	f.StringVar(&o.mode, "mode", "", "the mode the lock is held in (required)")
	return cmd
}

func (o *lockReleaseOptions) run(cmd *cobra.Command) error {
	if err := o.t.check(); err != nil {
		return err
	}
	mode, err := parseMode("mode", o.mode)
	if err != nil {
		return err
	}
	c, l, err := o.lo.adopt(cmd.Context(), &o.t, mode)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := l.Unlock(cmd.Context(), 0, nil); err != nil {
		return err
	}
	if o.lo.g.json {
		return o.lo.g.printJSON(lockResult{o.t.lockspace, o.t.resource, mode.String(), fmt.Sprintf("%08x", l.ID()), "released"})
	}
	fmt.Fprintf(o.lo.g.out, "%v on %s released\n", mode, &o.t)
	return nil
}
