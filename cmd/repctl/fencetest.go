package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/fence"
)

type fenceTestOptions struct{ g *globals }

func newFenceTestCmd(g *globals) *cobra.Command {
	o := &fenceTestOptions{g: g}
	return &cobra.Command{
		Use:   "test DEVICE",
		Short: "Check a fence device without fencing: monitor, then the power status of each node it fences",
		Long: `Check a fence device without fencing anything: the agent's monitor action,
then its status action for every node the device can fence. Exits 1 if any
check failed. A node reported off is not a failure.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args[0]) },
	}
}

func (o *fenceTestOptions) run(cmd *cobra.Command, name string) error {
	var res fence.DeviceTest
	if err := o.g.client().Do(cmd.Context(), http.MethodPost, devicePath(name, "test"), nil, &res); err != nil {
		return err
	}
	if o.g.json {
		if err := o.g.printJSON(res); err != nil {
			return err
		}
	} else {
		monitor := "monitor ok"
		if res.Monitor != "ok" {
			monitor = "monitor FAILED"
		}
		var states []string
		for _, t := range res.Targets {
			states = append(states, t.Target+" "+t.State)
		}
		fmt.Fprintf(o.g.out, "%s: %s; %s\n", res.Device, monitor, strings.Join(states, ", "))
		if res.Monitor != "ok" {
			fmt.Fprintf(o.g.out, "  monitor: %s\n", res.Monitor)
		}
		for _, t := range res.Targets {
			if t.Error != "" {
				fmt.Fprintf(o.g.out, "  %s (port %s): %s\n", t.Target, t.Port, t.Error)
			}
		}
	}
	if !res.OK {
		return fmt.Errorf("fence device %s failed its test; it may not be able to fence (check its address, credentials and the agent's parameters)", res.Device)
	}
	return nil
}
