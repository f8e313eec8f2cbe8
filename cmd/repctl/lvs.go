package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/replicad/replicad/lvs"
)

// newLVSCmd groups the load-balancer commands (docs/lvs.md).
func newLVSCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lvs",
		Short: "Virtual services, real servers and VIPs of the load balancer",
		Long: `Show and change the load balancer of the running replicad.

Changes take effect at once but live in the running replicad only: a
restart goes back to the lvs section of its config file. ` + "`repctl lvs save`" + `
prints the running section in the config file's format to keep them, and
` + "`repctl lvs restore FILE`" + ` applies such a section (or a whole config file).`,
	}
	cmd.AddCommand(newLVSListCmd(g), newLVSAddServiceCmd(g), newLVSEditServiceCmd(g), newLVSDeleteServiceCmd(g),
		newLVSAddRSCmd(g), newLVSEditRSCmd(g), newLVSDeleteRSCmd(g),
		newLVSSaveCmd(g), newLVSRestoreCmd(g), newLVSReconcileCmd(g), newLVSVIPsCmd(g))
	return cmd
}

// servicePath is the control-API path of a service, or of one of its real
// servers when addr is given.
func servicePath(name string, addr ...string) string {
	p := "/v1/lvs/services/" + url.PathEscape(name)
	if len(addr) > 0 {
		p += "/real-servers/" + url.PathEscape(addr[0])
	}
	return p
}

func getService(ctx context.Context, g *globals, name string) (lvs.ServiceConfig, error) {
	var sc lvs.ServiceConfig
	return sc, g.client().Do(ctx, http.MethodGet, servicePath(name), nil, &sc)
}

// edited reports a runtime change: the daemon's answer with --json, a line
// and the reminder that the config file does not have it otherwise.
func edited(g *globals, answer any, format string, args ...any) error {
	if g.json {
		return g.printJSON(answer)
	}
	fmt.Fprintf(g.out, format+"\n", args...)
	fmt.Fprintln(g.out, "note: changed in the running replicad only; `repctl lvs save` prints the lvs section to keep it in the config file")
	return nil
}

// realServerKey is a real server's address with the port filled in as the
// daemon does: a bare address takes the service's port (0 for a firewall
// mark service).
func realServerKey(sc lvs.ServiceConfig, s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, usageError{fmt.Errorf("real server %q: want ADDRESS or ADDRESS:PORT ([v6]:PORT)", s)}
	}
	var port uint16
	if sc.FWMark == 0 {
		svc, err := netip.ParseAddrPort(sc.Address)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("service %s has address %q: %w", sc.Name, sc.Address, err)
		}
		port = svc.Port()
	}
	return netip.AddrPortFrom(a, port), nil
}

// findRealServer returns the index of the real server addr in sc.
func findRealServer(sc lvs.ServiceConfig, addr string) (int, error) {
	want, err := realServerKey(sc, addr)
	if err != nil {
		return 0, err
	}
	for i, rc := range sc.RealServers {
		if got, err := realServerKey(sc, rc.Address); err == nil && got == want {
			return i, nil
		}
	}
	return 0, errors.New("service " + sc.Name + " has no real server " + want.String() + " (`repctl lvs list` shows them)")
}
