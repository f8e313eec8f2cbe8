package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/fence"
	"github.com/replicad/replicad/internal/control"
)

// newFenceCmd is `repctl fence`: the node's fence devices, fencing a node,
// the history and an operator's confirmation (docs/fencing.md).
func newFenceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fence",
		Short: "Fence devices, fencing a node, the fence history",
		Long: `Fencing switches a failed node off (verified off) before the cluster recovers
what it held. These commands talk to this node's replicad, which runs the
fence agents configured in its fence section (see docs/fencing.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("give a fence command: list, test, node, history, confirm or peer")}
		},
	}
	cmd.AddCommand(newFenceListCmd(g), newFenceTestCmd(g), newFenceNodeCmd(g), newFenceHistoryCmd(g),
		newFenceConfirmCmd(g), newFencePeerCmd(g))
	return cmd
}

// failedResult returns the operation a fence_failed answer carries.
func failedResult(err error) (fence.Result, bool) {
	var api *control.APIError
	if !errors.As(err, &api) || len(api.Body.Detail) == 0 {
		return fence.Result{}, false
	}
	var res fence.Result
	if json.Unmarshal(api.Body.Detail, &res) != nil || res.ID == 0 {
		return fence.Result{}, false
	}
	return res, true
}

func nodePath(node, verb string) string {
	return "/v1/fence/nodes/" + url.PathEscape(node) + "/" + verb
}

func devicePath(name, verb string) string {
	return "/v1/fence/devices/" + url.PathEscape(name) + "/" + verb
}

// printOperation writes an operation's summary, its steps and warnings.
func printOperation(w io.Writer, op fence.Operation, merged bool) {
	what := fmt.Sprintf("%s %s: %s", op.Action, op.Target, op.State)
	var about []string
	about = append(about, fmt.Sprintf("op %d", op.ID))
	if op.Level > 0 {
		about = append(about, fmt.Sprintf("level %d", op.Level))
	}
	if len(op.Devices) > 0 {
		about = append(about, "devices "+strings.Join(op.Devices, ","))
	}
	if !op.Completed.IsZero() && !op.Started.IsZero() && op.Completed.After(op.Started) {
		about = append(about, "took "+op.Completed.Sub(op.Started).Round(time.Millisecond).String())
	}
	if merged {
		about = append(about, "joined an operation already running")
	}
	fmt.Fprintf(w, "%s (%s)\n", what, strings.Join(about, ", "))
	for _, r := range op.Requesters {
		fmt.Fprintf(w, "  asked by %s at %s: %s\n", r.Origin, clock(r.At), r.Reason)
	}
	printSteps(w, op)
	if op.Error != "" {
		for _, l := range strings.Split(op.Error, "\n") {
			fmt.Fprintf(w, "  error: %s\n", l)
		}
	}
	for _, warn := range op.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
}

// printSteps writes one aligned line per agent call or wait of an
// operation.
func printSteps(w io.Writer, op fence.Operation) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range op.Steps {
		result := "ok"
		if s.Error != "" {
			result = "FAILED: " + s.Error
		}
		if s.Detail != "" {
			result += " (" + s.Detail + ")"
		}
		port, attempt := "", ""
		if s.Port != "" {
			port = "port " + s.Port
		}
		if s.Attempt > 0 {
			attempt = fmt.Sprintf("attempt %d", s.Attempt)
		}
		fmt.Fprintf(tw, "  %s\tlevel %d\t%s\t%s\t%s\t%s\t%s\t%s\n", clock(s.Start), s.Level, s.Action, s.Device, port, attempt,
			s.End.Sub(s.Start).Round(time.Millisecond), result)
	}
	tw.Flush()
}

// clock formats a time for tables: local date and time to the millisecond.
func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05.000")
}
