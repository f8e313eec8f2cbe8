package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/internal/bytesize"
	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/lvs"
)

type lvsListOptions struct{ g *globals }

func newLVSListCmd(g *globals) *cobra.Command {
	o := &lvsListOptions{g: g}
	return &cobra.Command{
		Use:   "list [SERVICE]",
		Short: "Show virtual services and real servers with weights, health and counters",
		Long: `Show the virtual services and their real servers. WEIGHT is
configured/effective/kernel: effective is what health makes of the
configured weight (0 = quiesced, - = removed), kernel what the kernel holds
now. On nftables the counters are new connections only.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st control.LVSStatus
			if err := o.g.client().Do(cmd.Context(), http.MethodGet, "/v1/lvs", nil, &st); err != nil {
				return err
			}
			if len(args) == 1 {
				keep := named(st.Services, args[0], func(s lvs.ServiceStatus) string { return s.Name })
				if keep == nil {
					return fmt.Errorf("no service named %q (`repctl lvs list` shows them all)", args[0])
				}
				st.Services = keep
			}
			if o.g.json {
				return o.g.printJSON(st)
			}
			o.print(st)
			return nil
		},
	}
}

func (o *lvsListOptions) print(st control.LVSStatus) {
	w := o.g.out
	fmt.Fprintf(w, "backend %s (%s)\n", st.Backend, st.BackendReason)
	if !st.LastReconcile.IsZero() {
		fmt.Fprintf(w, "last reconcile %s (%s ago)\n", st.LastReconcile.Format(time.RFC3339), time.Since(st.LastReconcile).Round(time.Second))
	}
	if st.LastError != "" {
		fmt.Fprintf(w, "last error: %s\n", st.LastError)
	}
	if len(st.Services) == 0 {
		fmt.Fprintln(w, "no virtual services (add one with `repctl lvs add-service`)")
	}
	for _, s := range st.Services {
		fmt.Fprintln(w)
		o.printService(s)
	}
	if len(st.Unmanaged) > 0 {
		fmt.Fprintf(w, "\nnot configured, left alone: %s\n", strings.Join(st.Unmanaged, ", "))
	}
	if st.DiffersFromConfigFile {
		fmt.Fprintln(w, "\nnote: changed at runtime; a restart goes back to the config file's lvs section (`repctl lvs save` prints the running one)")
	}
}

func (o *lvsListOptions) printService(s lvs.ServiceStatus) {
	w := o.g.out
	notes := []string{"sched " + s.Scheduler}
	if s.Persistence != "" {
		notes = append(notes, "persist "+s.Persistence)
	}
	notes = append(notes, "on-failure "+s.OnFailure)
	if s.SorryActive {
		notes = append(notes, "SORRY SERVER ACTIVE")
	}
	if !s.InKernel {
		notes = append(notes, "NOT IN KERNEL")
	}
	fmt.Fprintf(w, "%s  %s  %s\n", s.Name, s.Key, strings.Join(notes, ", "))
	fmt.Fprintf(w, "  conns %d, packets in/out %d/%d, bytes in/out %s/%s\n", s.Stats.Connections,
		s.Stats.PacketsIn, s.Stats.PacketsOut, bytesize.Format(int64(s.Stats.BytesIn)), bytesize.Format(int64(s.Stats.BytesOut)))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ADDRESS\tFWD\tWEIGHT\tHEALTH\tCHECK\tCONNS\tACTIVE\tINACT\tLAST-ERROR")
	for _, r := range s.RealServers {
		addr := r.Address
		if r.Sorry {
			addr += " (sorry)"
		}
		weight := fmt.Sprintf("%d/%s/%s", r.Weight, weightText(r.EffectiveWeight), weightText(r.KernelWeight))
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", addr, r.Forward, weight, r.Health, r.Check,
			r.Stats.Connections, r.Stats.ActiveConns, r.Stats.InactiveConns, dash(r.LastError))
	}
	tw.Flush()
}

func weightText(w *uint32) string {
	if w == nil {
		return "-"
	}
	return strconv.FormatUint(uint64(*w), 10)
}
