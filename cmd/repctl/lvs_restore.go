package main

import (
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

type lvsRestoreOptions struct{ g *globals }

func newLVSRestoreCmd(g *globals) *cobra.Command {
	o := &lvsRestoreOptions{g: g}
	return &cobra.Command{
		Use:   "restore FILE|-",
		Short: "Replace the running lvs configuration with a saved one",
		Long: `Replace the running lvs configuration with FILE (- for standard input):
what ` + "`repctl lvs save`" + ` wrote, or replicad's config file itself (its lvs
section is taken, e.g. to apply an edited file without a restart). Only the
differences reach the kernel. The backend settings (backend,
nftables-table, ipvs-state-file) cannot change without a restart.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			var err error
			if args[0] == "-" {
				data, err = io.ReadAll(cmd.InOrStdin())
			} else {
				data, err = os.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			var got control.LVSConfigDocument
			if err := o.g.client().Do(cmd.Context(), http.MethodPut, "/v1/lvs/config", control.LVSConfigDocument{YAML: string(data)}, &got); err != nil {
				return err
			}
			if o.g.json {
				return o.g.printJSON(got)
			}
			fmt.Fprintf(o.g.out, "lvs configuration restored from %s\n", args[0])
			return nil
		},
	}
}
