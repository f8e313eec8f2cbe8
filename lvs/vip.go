package lvs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/replicad/replicad/internal/clock"
)

// VIPOptions are a VIP's dependencies.
type VIPOptions struct {
	Logger *slog.Logger
	Clock  clock.Clock
	NetNS  string // namespace holding the interface ("" for the current one)
}

// VIP is one virtual address this node may own. The caller (the cluster
// manager) decides when: Acquire adds it and announces it, Release removes
// it. Methods are safe for concurrent use.
type VIP struct {
	cfg    VIPConfig // with defaults
	prefix netip.Prefix
	log    *slog.Logger
	clk    clock.Clock
	netns  string

	mu struct {
		sync.Mutex
		cancel context.CancelFunc // of the running announcement
		done   chan struct{}
	}
}

// NewVIP validates a VIP's configuration.
func NewVIP(cfg VIPConfig, opts VIPOptions) (*VIP, error) {
	c := DefaultConfig()
	c.VIPs = []VIPConfig{cfg}
	if _, problems := c.compile(); len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	v := &VIP{cfg: cfg.withDefaults(), prefix: netip.MustParsePrefix(cfg.Address), log: opts.Logger, clk: opts.Clock, netns: opts.NetNS}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.clk == nil {
		v.clk = clock.Real()
	}
	return v, nil
}

// Address returns the VIP's address.
func (v *VIP) Address() netip.Addr { return v.prefix.Addr() }

func (v *VIP) handle() (*netlink.Handle, func(), error) {
	h, closeNS, err := nsHandle(v.netns)
	if err != nil {
		return nil, nil, err
	}
	nh, err := netlink.NewHandleAt(h)
	closeNS()
	if err != nil {
		return nil, nil, fmt.Errorf("netlink: %w", err)
	}
	return nh, nh.Close, nil
}

func (v *VIP) link(h *netlink.Handle) (netlink.Link, error) {
	l, err := h.LinkByName(v.cfg.Interface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchInterface, v.cfg.Interface)
		}
		return nil, fmt.Errorf("netlink: link %s: %w", v.cfg.Interface, err)
	}
	return l, nil
}

func (v *VIP) nlAddr() *netlink.Addr {
	ipn := &net.IPNet{IP: v.prefix.Addr().AsSlice(), Mask: net.CIDRMask(v.prefix.Bits(), v.prefix.Addr().BitLen())}
	a := &netlink.Addr{IPNet: ipn, Label: v.cfg.Label}
	if v.prefix.Addr().Is6() {
		// Usable at once: no duplicate-address detection (the cluster
		// manager has made sure nobody else holds it).
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// Acquire adds the address to the interface (idempotently) and announces
// it: the first gratuitous ARP / unsolicited neighbour advertisement goes
// out before Acquire returns, the rest ARPInterval apart in the background
// (Release and Close stop them).
func (v *VIP) Acquire(ctx context.Context) error {
	h, closeH, err := v.handle()
	if err != nil {
		return err
	}
	defer closeH()
	l, err := v.link(h)
	if err != nil {
		return err
	}
	// AddrReplace: adding an address that is already there is not an error.
	if err := h.AddrReplace(l, v.nlAddr()); err != nil {
		return fmt.Errorf("add %s to %s: %w", v.prefix, v.cfg.Interface, err)
	}
	v.log.Info("lvs: virtual IP added", "vip", v.cfg.Name, "address", v.prefix, "interface", v.cfg.Interface)
	if v.cfg.ARPCount <= 0 {
		return nil
	}
	a, err := v.openAnnouncer()
	if err != nil {
		return fmt.Errorf("announce %s: %w", v.prefix.Addr(), err)
	}
	if err := a.announce(); err != nil {
		a.close()
		return fmt.Errorf("announce %s: %w", v.prefix.Addr(), err)
	}
	v.stopAnnouncing()
	actx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	v.mu.Lock()
	v.mu.cancel, v.mu.done = cancel, done
	v.mu.Unlock()
	go func() {
		defer close(done)
		defer a.close()
		for i := 1; i < v.cfg.ARPCount; i++ {
			if !clock.Sleep(v.clk, v.cfg.ARPInterval, actx.Done()) {
				return
			}
			if err := a.announce(); err != nil {
				v.log.Warn("lvs: announcement failed", "vip", v.cfg.Name, "err", err)
			}
		}
	}()
	return nil
}

// Announce sends ARPCount announcements ARPInterval apart and returns when
// done (for a refresh without re-adding the address).
func (v *VIP) Announce(ctx context.Context) error {
	a, err := v.openAnnouncer()
	if err != nil {
		return err
	}
	defer a.close()
	for i := range max(v.cfg.ARPCount, 1) {
		if i > 0 && !clock.Sleep(v.clk, v.cfg.ARPInterval, ctx.Done()) {
			return ctx.Err()
		}
		if err := a.announce(); err != nil {
			return err
		}
	}
	return nil
}

func (v *VIP) stopAnnouncing() {
	v.mu.Lock()
	cancel, done := v.mu.cancel, v.mu.done
	v.mu.cancel, v.mu.done = nil, nil
	v.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Release stops announcing and removes the address (removing an absent
// address is not an error).
func (v *VIP) Release(ctx context.Context) error {
	v.stopAnnouncing()
	h, closeH, err := v.handle()
	if err != nil {
		return err
	}
	defer closeH()
	l, err := v.link(h)
	if err != nil {
		return err
	}
	if err := h.AddrDel(l, v.nlAddr()); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("remove %s from %s: %w", v.prefix, v.cfg.Interface, err)
	}
	v.log.Info("lvs: virtual IP removed", "vip", v.cfg.Name, "address", v.prefix, "interface", v.cfg.Interface)
	return nil
}

// Close stops a running announcement. The address stays.
func (v *VIP) Close() error {
	v.stopAnnouncing()
	return nil
}

// announcer sends one gratuitous ARP (IPv4) or unsolicited NA (IPv6).
type announcer struct {
	announce func() error
	close    func()
}

func (v *VIP) openAnnouncer() (*announcer, error) {
	vip := v.prefix.Addr()
	var a *announcer
	err := inNetNS(v.netns, func() error {
		ifi, err := net.InterfaceByName(v.cfg.Interface)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrNoSuchInterface, v.cfg.Interface, err)
		}
		if vip.Is4() {
			c, err := arp.Dial(ifi)
			if err != nil {
				return fmt.Errorf("arp on %s: %w", ifi.Name, err)
			}
			// RFC 5227 announcement: a request for our own address, target
			// hardware address zero, sent to broadcast. Neighbours that
			// have the address cached update it.
			p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, vip, make(net.HardwareAddr, len(ifi.HardwareAddr)), vip)
			if err != nil {
				c.Close()
				return err
			}
			bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
			a = &announcer{
				announce: func() error { return c.WriteTo(p, bcast) },
				close:    func() { c.Close() },
			}
			return nil
		}
		// Sent from the VIP itself (added without DAD, so not tentative).
		c, _, err := ndp.Listen(ifi, ndp.Addr(vip.String()))
		if err != nil {
			return fmt.Errorf("ndp on %s: %w", ifi.Name, err)
		}
		na := &ndp.NeighborAdvertisement{
			Override:      true,
			TargetAddress: vip,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr}},
		}
		all := netip.MustParseAddr("ff02::1")
		a = &announcer{
			announce: func() error { return c.WriteTo(na, nil, all) },
			close:    func() { c.Close() },
		}
		return nil
	})
	return a, err
}

// VIPState is what Check and Watch report.
type VIPState struct {
	Present bool   `json:"present"` // the address is on the interface
	LinkUp  bool   `json:"link_up"` // the interface is up with carrier
	Problem string `json:"problem,omitempty"`
}

// Healthy reports whether the VIP is usable.
func (s VIPState) Healthy() bool { return s.Present && s.LinkUp }

// linkUp is the IPaddr2 rule: administratively up and not reporting its
// lower layer down (loopback and some virtual links report "unknown").
func linkUp(attrs *netlink.LinkAttrs) bool {
	if attrs.Flags&net.FlagUp == 0 {
		return false
	}
	return attrs.OperState == netlink.OperUp || attrs.OperState == netlink.OperUnknown
}

// Check reports whether the address is on the interface and the link is up.
func (v *VIP) Check(ctx context.Context) (VIPState, error) {
	h, closeH, err := v.handle()
	if err != nil {
		return VIPState{}, err
	}
	defer closeH()
	l, err := v.link(h)
	if err != nil {
		return VIPState{Problem: err.Error()}, err
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return VIPState{}, fmt.Errorf("netlink: addresses of %s: %w", v.cfg.Interface, err)
	}
	return v.evaluate(l.Attrs(), addrs), nil
}

func (v *VIP) evaluate(attrs *netlink.LinkAttrs, addrs []netlink.Addr) VIPState {
	st := VIPState{LinkUp: linkUp(attrs)}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == v.prefix.Addr() {
			st.Present = true
		}
	}
	switch {
	case !st.Present && !st.LinkUp:
		st.Problem = fmt.Sprintf("%s is not on %s and the link is down (%s)", v.prefix.Addr(), v.cfg.Interface, attrs.OperState)
	case !st.Present:
		st.Problem = fmt.Sprintf("%s is not on %s", v.prefix.Addr(), v.cfg.Interface)
	case !st.LinkUp:
		st.Problem = fmt.Sprintf("link %s is down (%s)", v.cfg.Interface, attrs.OperState)
	}
	return st
}

// Watch reports the VIP's state to fn now and on every change until ctx
// ends: it listens to netlink address and link notifications in the VIP's
// namespace and re-checks every MonitorInterval besides. It blocks; fn runs
// on the caller's goroutine.
func (v *VIP) Watch(ctx context.Context, fn func(VIPState)) error {
	h, closeNS, err := nsHandle(v.netns)
	if err != nil {
		return err
	}
	defer closeNS()
	done := make(chan struct{})
	defer close(done)
	addrCh := make(chan netlink.AddrUpdate, 16)
	linkCh := make(chan netlink.LinkUpdate, 16)
	var ns *netns.NsHandle
	if v.netns != "" {
		ns = &h
	}
	if err := netlink.AddrSubscribeWithOptions(addrCh, done, netlink.AddrSubscribeOptions{Namespace: ns}); err != nil {
		return fmt.Errorf("netlink: subscribe to addresses: %w", err)
	}
	if err := netlink.LinkSubscribeWithOptions(linkCh, done, netlink.LinkSubscribeOptions{Namespace: ns}); err != nil {
		return fmt.Errorf("netlink: subscribe to links: %w", err)
	}
	var last *VIPState
	report := func() {
		st, err := v.Check(ctx)
		if err != nil && st.Problem == "" {
			st.Problem = err.Error()
		}
		if last == nil || *last != st {
			last = &st
			fn(st)
		}
	}
	report()
	t := v.clk.NewTimer(v.cfg.MonitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-addrCh:
			if !ok {
				return fmt.Errorf("netlink: address subscription ended")
			}
		case _, ok := <-linkCh:
			if !ok {
				return fmt.Errorf("netlink: link subscription ended")
			}
		case <-t.C():
			t.Reset(v.cfg.MonitorInterval)
		}
		report()
	}
}

// NewVIPs builds every VIP of a configuration, by name (the daemon hands
// them to the cluster manager, which decides when to Acquire each).
func NewVIPs(cfg Config, opts VIPOptions) (map[string]*VIP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	out := make(map[string]*VIP, len(cfg.VIPs))
	for _, vc := range cfg.VIPs {
		v, err := NewVIP(vc, opts)
		if err != nil {
			return nil, err
		}
		out[vc.Name] = v
	}
	return out, nil
}
