package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/control"
)

type eventsOptions struct {
	g      *globals
	volume string
}

func newEventsCmd(g *globals) *cobra.Command {
	o := &eventsOptions{g: g}
	cmd := &cobra.Command{
		Use:   "events [--volume VOLUME]",
		Short: "Stream state changes (roles, disks, connections, resyncs) as they happen",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.volume, "volume", "", "only this volume's events")
	return cmd
}

func (o *eventsOptions) run(ctx context.Context) error {
	path := "/v1/events"
	if o.volume != "" {
		path += "?volume=" + url.QueryEscape(o.volume)
	}
	return o.g.client().Stream(ctx, path, func(raw json.RawMessage) error {
		if o.g.json {
			_, err := fmt.Fprintf(o.g.out, "%s\n", raw)
			return err
		}
		var e control.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			return err
		}
		who := e.Volume
		if e.Peer != "" {
			who += " peer " + e.Peer
		}
		line := fmt.Sprintf("%s %s %s: %s -> %s", e.Time.Format("15:04:05.000"), who, e.What, e.Old, e.New)
		if e.Reason != "" {
			line += " (" + e.Reason + ")"
		}
		_, err := fmt.Fprintln(o.g.out, line)
		return err
	})
}
