package main

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

type resumeIOOptions struct{ g *globals }

func newResumeIOCmd(g *globals) *cobra.Command {
	o := &resumeIOOptions{g: g}
	return &cobra.Command{
		Use:   "resume-io VOLUME",
		Short: "Unfreeze I/O frozen by fencing (resource-and-stonith), whatever its outcome",
		Long: `Under fencing resource-and-stonith a primary that loses its peer freezes I/O
until the fence-peer handler reports the peer outdated or fenced. If the handler
failed, I/O stays frozen: resume it only once you know the peer is not primary
(otherwise both nodes may write and split the data).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v control.Volume
			if err := o.g.client().Do(cmd.Context(), http.MethodPost, "/v1/volumes/"+args[0]+"/resume-io", nil, &v); err != nil {
				return err
			}
			if o.g.json {
				return o.g.printJSON(v)
			}
			fmt.Fprintf(o.g.out, "%s: I/O %s\n", v.Name, map[bool]string{true: "still suspended", false: "running"}[v.Suspended])
			return nil
		},
	}
}
