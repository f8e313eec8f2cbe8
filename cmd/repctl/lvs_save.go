package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

type lvsSaveOptions struct {
	g      *globals
	output string
}

func newLVSSaveCmd(g *globals) *cobra.Command {
	o := &lvsSaveOptions{g: g}
	cmd := &cobra.Command{
		Use:   "save [-o FILE]",
		Short: "Print the running lvs configuration in the config file's format",
		Long: `Print the running lvs configuration, runtime changes included, as the lvs
section of replicad's config file. Replace the section in the config file
with it to keep the changes over a restart; ` + "`repctl lvs restore`" + ` applies it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var doc control.LVSConfigDocument
			if err := o.g.client().Do(cmd.Context(), http.MethodGet, "/v1/lvs/config", nil, &doc); err != nil {
				return err
			}
			switch {
			case o.output != "":
				if err := writeFileAtomic(o.output, []byte(doc.YAML)); err != nil {
					return err
				}
				if !o.g.json {
					fmt.Fprintf(o.g.out, "saved to %s\n", o.output)
				}
				return nil
			case o.g.json:
				return o.g.printJSON(doc)
			}
			_, err := fmt.Fprint(o.g.out, doc.YAML)
			return err
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "write to FILE (replaced atomically) instead of standard output")
	return cmd
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it over path, so that a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o600); err != nil { // it may hold check passwords
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
