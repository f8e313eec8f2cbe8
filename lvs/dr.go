package lvs

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DR real-server sysctls (Documentation/networking/ip-sysctl.rst): the
// kernel uses the larger of conf/all and conf/<dev>, so conf/all covers
// every interface.
//   - arp_ignore=1: answer ARP only for addresses on the interface the
//     request came in on (the VIP is on lo, so never for the VIP).
//   - arp_announce=2: use the best local address of the outgoing
//     interface as ARP source, never the VIP.
var drSysctls = []struct{ path, value string }{
	{"/proc/sys/net/ipv4/conf/all/arp_ignore", "1"},
	{"/proc/sys/net/ipv4/conf/all/arp_announce", "2"},
}

// ConfigureDRRealServer prepares the host (or the network namespace at
// netnsPath) to be a real server of LVS-DR or LVS-TUN services for vips: it
// puts each VIP on lo as a host address (no duplicate-address detection)
// and, when a VIP is IPv4, sets arp_ignore=1 and arp_announce=2 so the host
// never answers or announces the VIP on the shared segment (only the
// director must). IPv6 needs no sysctl: neighbour discovery only answers
// for addresses on the receiving interface.
//
// undo restores the previous sysctl values and removes the addresses it
// added (not ones that were already there).
func ConfigureDRRealServer(netnsPath string, vips []netip.Addr) (undo func() error, err error) {
	var undos []func() error
	undo = func() error {
		var errs []error
		for i := len(undos) - 1; i >= 0; i-- {
			errs = append(errs, undos[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			undo()
		}
	}()
	h, closeNS, err := nsHandle(netnsPath)
	if err != nil {
		return undo, err
	}
	nh, err := netlink.NewHandleAt(h)
	closeNS()
	if err != nil {
		return undo, fmt.Errorf("netlink: %w", err)
	}
	lo, err := nh.LinkByName("lo")
	if err != nil {
		nh.Close()
		return undo, fmt.Errorf("netlink: lo: %w", err)
	}
	undos = append(undos, func() error { nh.Close(); return nil })
	any4 := false
	for _, vip := range vips {
		vip = vip.Unmap()
		any4 = any4 || vip.Is4()
		a := &netlink.Addr{IPNet: &net.IPNet{IP: vip.AsSlice(), Mask: net.CIDRMask(vip.BitLen(), vip.BitLen())}}
		if vip.Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		switch err := nh.AddrAdd(lo, a); {
		case errors.Is(err, syscall.EEXIST):
			// Already there: not ours to remove later.
		case err != nil:
			return undo, fmt.Errorf("add %s to lo: %w", vip, err)
		default:
			undos = append(undos, func() error {
				if err := nh.AddrDel(lo, a); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
					return fmt.Errorf("remove %s from lo: %w", vip, err)
				}
				return nil
			})
		}
	}
	if !any4 {
		return undo, nil
	}
	for _, s := range drSysctls {
		var old string
		err := inNetNS(netnsPath, func() error {
			b, err := os.ReadFile(s.path)
			if err != nil {
				return err
			}
			old = strings.TrimSpace(string(b))
			return os.WriteFile(s.path, []byte(s.value), 0o644)
		})
		if err != nil {
			return undo, fmt.Errorf("sysctl %s=%s: %w", s.path, s.value, err)
		}
		path := s.path
		undos = append(undos, func() error {
			return inNetNS(netnsPath, func() error { return os.WriteFile(path, []byte(old), 0o644) })
		})
	}
	return undo, nil
}
