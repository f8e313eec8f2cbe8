package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	o := &runOptions{}
	root := &cobra.Command{
		Use:   "replicad [--config FILE]",
		Short: "replicad: replicated block volumes served over NBD",
		Long: `replicad: replicated block volumes served over NBD.

"replicad --config FILE" is "replicad run --config FILE": it runs the daemon.
Without a command or --config, replicad prints this help.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("config") {
				return cmd.Help()
			}
			return o.run(cmd)
		},
	}
	o.addFlags(root)
	root.AddCommand(newRunCmd(), newDemoCmd())
	return root
}
