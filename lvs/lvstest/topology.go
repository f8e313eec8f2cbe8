package lvstest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

// Topology is the network the LVS integration tests and the benchmark run
// on, all in namespaces named PREFIX-*:
//
//	client (eth0 10.231.1.10/24, extra .11-.19)            front bridge
//	   |                                                     in PREFIX-sw
//	director d1 (eth0 10.231.1.1, eth1 10.231.2.1)  director d2 (.2, .2)
//	   |                                                     back bridge
//	real servers rs1..rsN (eth0 10.231.2.11.., default route via 10.231.2.254)
//
// 10.231.1.100 is the service VIP and 10.231.2.254 the real servers'
// gateway VIP; whichever director holds them does the NAT. Directors
// forward IPv4 (NAT needs it). No address leaves these namespaces.
type Topology struct {
	Prefix      string
	Switch      *NS
	Client      *NS
	Directors   []*NS
	RealServers []*NS

	ClientAddr      netip.Addr
	ClientExtra     []netip.Addr // more client addresses, for source-hash tests
	DirectorFront   []netip.Addr
	DirectorBack    []netip.Addr
	RealServerAddrs []netip.Addr
	VIP             netip.Prefix // 10.231.1.100/24
	GatewayVIP      netip.Prefix // 10.231.2.254/24
}

// Addresses of the topology.
var (
	frontNet = "10.231.1."
	backNet  = "10.231.2."
)

// NewTopology builds the network with nRS real servers. Close removes it.
func NewTopology(prefix string, nRS int) (t *Topology, err error) {
	t = &Topology{
		Prefix:     prefix,
		ClientAddr: netip.MustParseAddr(frontNet + "10"),
		VIP:        netip.MustParsePrefix(frontNet + "100/24"),
		GatewayVIP: netip.MustParsePrefix(backNet + "254/24"),
	}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if t.Switch, err = AddNS(prefix + "-sw"); err != nil {
		return t, err
	}
	for _, br := range []string{"brf", "brb"} {
		if _, err := t.Switch.IP("link", "add", br, "type", "bridge"); err != nil {
			return t, err
		}
		if _, err := t.Switch.IP("link", "set", br, "up"); err != nil {
			return t, err
		}
	}
	// plug adds interface ifname in host, cabled to bridge br.
	plug := func(host *NS, ifname, br, addr string) error {
		port := fmt.Sprintf("%s-%s", strings.TrimPrefix(host.Name, prefix+"-"), ifname)
		if _, err := t.Switch.IP("link", "add", port, "type", "veth", "peer", "name", ifname, "netns", host.Name); err != nil {
			return err
		}
		if _, err := t.Switch.IP("link", "set", port, "master", br, "up"); err != nil {
			return err
		}
		if _, err := host.IP("addr", "add", addr, "dev", ifname); err != nil {
			return err
		}
		if _, err := host.IP("link", "set", ifname, "up"); err != nil {
			return err
		}
		return host.WaitLinkUp(ifname)
	}
	if t.Client, err = AddNS(prefix + "-c"); err != nil {
		return t, err
	}
	if err := plug(t.Client, "eth0", "brf", t.ClientAddr.String()+"/24"); err != nil {
		return t, err
	}
	for i := 11; i < 20; i++ {
		a := netip.MustParseAddr(fmt.Sprintf("%s%d", frontNet, i))
		if _, err := t.Client.IP("addr", "add", a.String()+"/24", "dev", "eth0"); err != nil {
			return t, err
		}
		t.ClientExtra = append(t.ClientExtra, a)
	}
	if _, err := t.Client.IP("route", "add", backNet+"0/24", "via", frontNet+"1"); err != nil {
		return t, err
	}
	for i := 1; i <= 2; i++ {
		d, err := AddNS(fmt.Sprintf("%s-d%d", prefix, i))
		if err != nil {
			return t, err
		}
		t.Directors = append(t.Directors, d)
		front, back := netip.MustParseAddr(fmt.Sprintf("%s%d", frontNet, i)), netip.MustParseAddr(fmt.Sprintf("%s%d", backNet, i))
		t.DirectorFront, t.DirectorBack = append(t.DirectorFront, front), append(t.DirectorBack, back)
		if err := plug(d, "eth0", "brf", front.String()+"/24"); err != nil {
			return t, err
		}
		if err := plug(d, "eth1", "brb", back.String()+"/24"); err != nil {
			return t, err
		}
		if err := d.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
			return t, err
		}
	}
	for i := 1; i <= nRS; i++ {
		r, err := AddNS(fmt.Sprintf("%s-rs%d", prefix, i))
		if err != nil {
			return t, err
		}
		t.RealServers = append(t.RealServers, r)
		a := netip.MustParseAddr(fmt.Sprintf("%s%d", backNet, 10+i))
		t.RealServerAddrs = append(t.RealServerAddrs, a)
		if err := plug(r, "eth0", "brb", a.String()+"/24"); err != nil {
			return t, err
		}
		if _, err := r.IP("route", "add", "default", "via", t.GatewayVIP.Addr().String()); err != nil {
			return t, err
		}
	}
	return t, nil
}

// Close deletes every namespace of the topology.
func (t *Topology) Close() error {
	var errs []error
	for _, ns := range append(append(append([]*NS{t.Client}, t.Directors...), t.RealServers...), t.Switch) {
		if ns != nil {
			if err := ns.Delete(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

var lladdrRE = regexp.MustCompile(`link/ether ([0-9a-f:]{17})`)

// MAC returns the hardware address of ifname in ns.
func (ns *NS) MAC(ifname string) (net.HardwareAddr, error) {
	out, err := ns.IP("link", "show", ifname)
	if err != nil {
		return nil, err
	}
	m := lladdrRE.FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("no link/ether in %q", out)
	}
	return net.ParseMAC(m[1])
}

var neighRE = regexp.MustCompile(`lladdr ([0-9a-f:]{17})`)

// Neighbour returns the link-layer address ns has cached for addr (`ip
// neigh show`), or nil when there is none.
func (ns *NS) Neighbour(addr netip.Addr) (net.HardwareAddr, string, error) {
	out, err := ns.IP("neigh", "show", addr.String())
	if err != nil {
		return nil, out, err
	}
	m := neighRE.FindStringSubmatch(out)
	if m == nil {
		return nil, strings.TrimSpace(out), nil
	}
	hw, err := net.ParseMAC(m[1])
	return hw, strings.TrimSpace(out), err
}
