package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/fence"
)

type fenceHistoryOptions struct {
	g       *globals
	since   string
	limit   int
	verbose bool
	now     func() time.Time
}

func newFenceHistoryCmd(g *globals) *cobra.Command {
	o := &fenceHistoryOptions{g: g, now: time.Now}
	cmd := &cobra.Command{
		Use:   "history [NODE]",
		Short: "Show fence operations, newest first",
		Long: `Show the fence operations this node's replicad ran or recorded (confirmations
included), newest first: who asked, why, which devices, the result.
-v adds every agent call with its time and result.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	f := cmd.Flags()
	f.StringVar(&o.since, "since", "", "only operations started since a duration ago (1h, 30m) or an RFC 3339 time")
	f.IntVar(&o.limit, "limit", 0, "at most this many operations (0: all)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "show each operation's steps")
	return cmd
}

// sinceTime reads --since: a duration back from now or an RFC 3339 time.
func (o *fenceHistoryOptions) sinceTime() (time.Time, error) {
	if o.since == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(o.since); err == nil && d > 0 {
		return o.now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, o.since); err == nil {
		return t, nil
	}
	return time.Time{}, usageError{fmt.Errorf("--since %q: want a duration such as 1h or 30m, or a time such as 2026-01-02T15:04:05Z", o.since)}
}

func (o *fenceHistoryOptions) run(cmd *cobra.Command, args []string) error {
	since, err := o.sinceTime()
	if err != nil {
		return err
	}
	if o.limit < 0 {
		return usageError{fmt.Errorf("--limit %d: want 0 (all) or more", o.limit)}
	}
	q := url.Values{}
	if len(args) == 1 {
		q.Set("target", args[0])
	}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	if o.limit > 0 {
		q.Set("limit", strconv.Itoa(o.limit))
	}
	path := "/v1/fence/history"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var res fence.HistoryResponse
	if err := o.g.client().Do(cmd.Context(), http.MethodGet, path, nil, &res); err != nil {
		return err
	}
	if o.g.json {
		return o.g.printJSON(res)
	}
	w := o.g.out
	if len(res.Operations) == 0 {
		fmt.Fprintln(w, "no fence operations recorded")
		return nil
	}
	if o.verbose {
		for i, op := range res.Operations {
			if i > 0 {
				fmt.Fprintln(w)
			}
			printOperation(w, op, false)
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTARTED\tTARGET\tACTION\tSTATE\tDEVICES\tCOMPLETED\tREQUESTER\tREASON")
	for _, op := range res.Operations {
		who, why := "-", "-"
		if len(op.Requesters) > 0 {
			who, why = op.Requesters[0].Origin, op.Requesters[0].Reason
			if n := len(op.Requesters) - 1; n > 0 {
				who += fmt.Sprintf(" (+%d)", n)
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", op.ID, clock(op.Started), op.Target, op.Action, op.State,
			dash(strings.Join(op.Devices, ",")), clock(op.Completed), who, why)
	}
	return tw.Flush()
}
