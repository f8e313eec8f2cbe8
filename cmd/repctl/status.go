package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/bytesize"
	"github.com/replicad/replicad/internal/control"
)

type statusOptions struct{ g *globals }

func newStatusCmd(g *globals) *cobra.Command {
	o := &statusOptions{g: g}
	return &cobra.Command{
		Use:   "status [VOLUME]",
		Short: "Show the node and its volumes",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, args)
		},
	}
}

// named keeps the items called name (nil if none).
func named[T any](items []T, name string, nameOf func(T) string) []T {
	var keep []T
	for _, it := range items {
		if nameOf(it) == name {
			keep = append(keep, it)
		}
	}
	return keep
}

func (o *statusOptions) run(cmd *cobra.Command, args []string) error {
	st, err := o.g.client().Status(cmd.Context())
	if err != nil {
		return err
	}
	if len(args) == 1 {
		keep := named(st.Volumes, args[0], func(v control.Volume) string { return v.Name })
		if keep == nil {
			return fmt.Errorf("no volume named %q", args[0])
		}
		st.Volumes = keep
	}
	if o.g.json {
		return o.g.printJSON(st)
	}
	w := o.g.out
	fmt.Fprintf(w, "node %s (id %d), replicad %s\n", st.Node.Name, st.Node.ID, st.Node.Version)
	if len(st.Volumes) == 0 {
		fmt.Fprintln(w, "no volumes configured")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tSTATE\tROLE\tDISK\tSIZE\tCONNS\tEXPORT")
	for _, v := range st.Volumes {
		size, export := "-", "-"
		if v.Size > 0 {
			size = bytesize.Format(v.Size)
		}
		if len(v.Exports) > 0 {
			export = v.Exports[0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", v.Name, v.State, dash(v.Role), dash(v.Disk), size, v.Connections, export)
	}
	tw.Flush()
	for _, v := range st.Volumes {
		for _, p := range v.Peers {
			line := fmt.Sprintf("  %s peer %s: %s %s, %s %s", v.Name, p.Node, p.Connection, p.Replication, p.Role, p.Disk)
			if p.OutOfSyncBytes > 0 {
				line += ", out of sync " + bytesize.Format(p.OutOfSyncBytes)
			}
			if r := p.Resync; r != nil {
				line += fmt.Sprintf(", resync %.1f%%", r.Percent)
				if r.BytesPerSec > 0 {
					line += fmt.Sprintf(" at %s/s", bytesize.Format(int64(r.BytesPerSec)))
				}
				if r.ETASeconds >= 0 {
					line += fmt.Sprintf(", %s left", (time.Duration(r.ETASeconds) * time.Second).String())
				}
			}
			if p.Fencing {
				line += ", fencing"
			}
			if p.Outdated {
				line += ", outdated"
			}
			if p.InItsSyncSet {
				line += ", this node in sync with it"
			}
			if p.LastError != "" && p.Connection != "Connected" {
				line += " (" + p.LastError + ")"
			}
			fmt.Fprintln(w, line)
		}
	}
	for _, v := range st.Volumes {
		var notes []string
		if v.Error != "" {
			notes = append(notes, v.Error)
		}
		if v.DiskError != "" {
			notes = append(notes, "disk error: "+v.DiskError)
		}
		switch {
		case v.Suspended && v.SuspendedFencing:
			notes = append(notes, "I/O SUSPENDED until fencing of a lost peer settles (repctl resume-io to override)")
		case v.Suspended:
			notes = append(notes, fmt.Sprintf("I/O SUSPENDED: no quorum (reaches %d of %d nodes); resumes when a majority is back", v.Reachable, v.Nodes))
		case v.Quorum == "lost":
			notes = append(notes, fmt.Sprintf("no quorum (reaches %d of %d nodes): cannot be promoted; as primary its I/O fails", v.Reachable, v.Nodes))
		}
		if v.Hint != "" {
			notes = append(notes, "hint: "+v.Hint)
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, "%s: %s\n", v.Name, strings.Join(notes, "; "))
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
