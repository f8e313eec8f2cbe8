package model

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Protocol is the transport protocol of a virtual service.
type Protocol uint8

// Protocols. A firewall-mark service has no protocol of its own (the mark
// can cover several); its Key has Protocol 0.
const (
	TCP Protocol = 6
	UDP Protocol = 17
)

// String returns "tcp", "udp" or "proto(N)".
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "proto(" + strconv.Itoa(int(p)) + ")"
}

// ParseProtocol parses "tcp" or "udp".
func ParseProtocol(s string) (Protocol, bool) {
	switch s {
	case "tcp":
		return TCP, true
	case "udp":
		return UDP, true
	}
	return 0, false
}

// Family is an address family.
type Family uint8

// Address families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns "ipv4" or "ipv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return "family(" + strconv.Itoa(int(f)) + ")"
}

// ParseFamily parses "ipv4" or "ipv6".
func ParseFamily(s string) (Family, bool) {
	switch s {
	case "ipv4":
		return IPv4, true
	case "ipv6":
		return IPv6, true
	}
	return 0, false
}

// FamilyOf returns the family of a.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() || a.Is4In6() {
		return IPv4
	}
	return IPv6
}

// Bits returns the address length in bits (32 or 128).
func (f Family) Bits() int {
	if f == IPv6 {
		return 128
	}
	return 32
}

// Key identifies a virtual service: either Protocol+Addr (+Port; 0 means
// every port and needs persistence) or FWMark+Family.
type Key struct {
	Family   Family
	Protocol Protocol // 0 for a firewall-mark service
	Addr     netip.Addr
	Port     uint16
	FWMark   uint32 // non-zero for a firewall-mark service
}

// IsFWMark reports whether the key names a firewall-mark service.
func (k Key) IsFWMark() bool { return k.FWMark != 0 }

// String renders the key as ParseKey reads it: "tcp/10.0.0.1:80",
// "udp/[2001:db8::1]:53", "fwmark/7/ipv4".
func (k Key) String() string {
	if k.IsFWMark() {
		return "fwmark/" + strconv.FormatUint(uint64(k.FWMark), 10) + "/" + k.Family.String()
	}
	return k.Protocol.String() + "/" + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// Compare orders keys deterministically (plans and listings are sorted).
func (k Key) Compare(o Key) int {
	if c := cmp.Compare(k.FWMark, o.FWMark); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Family, o.Family); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Protocol, o.Protocol); c != 0 {
		return c
	}
	if c := k.Addr.Compare(o.Addr); c != 0 {
		return c
	}
	return cmp.Compare(k.Port, o.Port)
}

// ParseKey is the inverse of Key.String.
func ParseKey(s string) (Key, error) {
	parts := strings.Split(s, "/")
	switch {
	case len(parts) == 3 && parts[0] == "fwmark":
		mark, err := strconv.ParseUint(parts[1], 10, 32)
		if err != nil || mark == 0 {
			return Key{}, fmt.Errorf("%w: %q: firewall mark must be 1..4294967295", ErrBadKey, s)
		}
		fam, ok := ParseFamily(parts[2])
		if !ok {
			return Key{}, fmt.Errorf("%w: %q: family must be ipv4 or ipv6", ErrBadKey, s)
		}
		return Key{Family: fam, FWMark: uint32(mark)}, nil
	case len(parts) == 2:
		proto, ok := ParseProtocol(parts[0])
		if !ok {
			return Key{}, fmt.Errorf("%w: %q: protocol must be tcp or udp", ErrBadKey, s)
		}
		ap, err := netip.ParseAddrPort(parts[1])
		if err != nil {
			return Key{}, fmt.Errorf("%w: %q: %v", ErrBadKey, s, err)
		}
		a := ap.Addr().Unmap()
		return Key{Family: FamilyOf(a), Protocol: proto, Addr: a, Port: ap.Port()}, nil
	}
	return Key{}, fmt.Errorf("%w: %q: want proto/addr:port or fwmark/N/family", ErrBadKey, s)
}

// Scheduler names a connection scheduling algorithm. The names are IPVS's,
// plus Random, which only the nftables backend offers.
type Scheduler string

// Schedulers.
const (
	RR     Scheduler = "rr"     // round robin
	WRR    Scheduler = "wrr"    // weighted round robin
	LC     Scheduler = "lc"     // least connections
	WLC    Scheduler = "wlc"    // weighted least connections
	SED    Scheduler = "sed"    // shortest expected delay
	NQ     Scheduler = "nq"     // never queue
	SH     Scheduler = "sh"     // source hashing
	DH     Scheduler = "dh"     // destination hashing
	LBLC   Scheduler = "lblc"   // locality-based least connections
	LBLCR  Scheduler = "lblcr"  // locality-based least connections with replication
	MH     Scheduler = "mh"     // Maglev hashing
	Random Scheduler = "random" // weighted random (nftables numgen random)
)

// Schedulers lists every scheduler replicad knows, in documentation order.
var Schedulers = []Scheduler{RR, WRR, LC, WLC, SED, NQ, SH, DH, LBLC, LBLCR, MH, Random}

// Known reports whether s is one of Schedulers.
func (s Scheduler) Known() bool { return slices.Contains(Schedulers, s) }

// Forward is how a director hands a connection to a real server.
type Forward string

// Forwarding methods.
const (
	NAT    Forward = "nat"    // rewrite the destination (masquerading)
	DR     Forward = "dr"     // direct routing: rewrite the MAC, keep the IP
	Tunnel Forward = "tunnel" // encapsulate (ipip, gue or gre)
)

// Forwards lists every forwarding method.
var Forwards = []Forward{NAT, DR, Tunnel}

// Known reports whether f is one of Forwards.
func (f Forward) Known() bool { return slices.Contains(Forwards, f) }

// TunnelType is the encapsulation of a Tunnel real server.
type TunnelType string

// Tunnel types (IPVS).
const (
	IPIP TunnelType = "ipip"
	GUE  TunnelType = "gue"
	GRE  TunnelType = "gre"
)

// Persistence keeps a client (its address masked to PrefixLen bits) on the
// same real server for Timeout after its last new connection. Timeout 0
// means no persistence.
type Persistence struct {
	Timeout   time.Duration
	PrefixLen int // 0..32 or 0..128; the mask applied to the client address
}

// Enabled reports whether persistence is on.
func (p Persistence) Enabled() bool { return p.Timeout > 0 }

// RealServer is one backend of a virtual service.
type RealServer struct {
	// Addr is the real server's address and port; port 0 (firewall-mark
	// services) keeps the client's destination port.
	Addr       netip.AddrPort
	Weight     uint32 // 0 quiesces: no new connections
	Forward    Forward
	Tunnel     TunnelType // for Forward == Tunnel; empty means ipip
	TunnelPort uint16     // for GUE
}

// Service is a virtual service as the kernel should hold it.
type Service struct {
	Key         Key
	Scheduler   Scheduler
	Persistence Persistence
	RealServers []RealServer // sorted by Addr (see Normalize)
}

// Normalize sorts the real servers by address so that services compare
// equal regardless of the order they were configured in.
func (s *Service) Normalize() {
	slices.SortFunc(s.RealServers, func(a, b RealServer) int { return a.Addr.Compare(b.Addr) })
}

// Clone returns a deep copy.
func (s Service) Clone() Service {
	s.RealServers = slices.Clone(s.RealServers)
	return s
}

// RealServer returns the real server at addr.
func (s Service) RealServer(addr netip.AddrPort) (RealServer, bool) {
	for _, rs := range s.RealServers {
		if rs.Addr == addr {
			return rs, true
		}
	}
	return RealServer{}, false
}

// Active returns the real servers that take new connections (weight > 0),
// in address order.
func (s Service) Active() []RealServer {
	var out []RealServer
	for _, rs := range s.RealServers {
		if rs.Weight > 0 {
			out = append(out, rs)
		}
	}
	return out
}

// SameAttrs reports whether two services (with the same key) have the same
// service-level attributes: scheduler and persistence. Real servers are
// compared one by one by the planner.
func (s Service) SameAttrs(o Service) bool {
	return s.Scheduler == o.Scheduler && s.Persistence == o.Persistence
}

// SameAttrs reports whether two real servers (with the same address) have
// the same attributes.
func (r RealServer) SameAttrs(o RealServer) bool {
	return r.Weight == o.Weight && r.Forward == o.Forward && r.Tunnel == o.Tunnel && r.TunnelPort == o.TunnelPort
}

// Stats are kernel counters. IPVS fills all of them; nftables counts only
// new connections (its NAT chains see the first packet of each flow).
type Stats struct {
	Connections   uint64 `json:"connections"`
	PacketsIn     uint64 `json:"packets_in"`
	PacketsOut    uint64 `json:"packets_out"`
	BytesIn       uint64 `json:"bytes_in"`
	BytesOut      uint64 `json:"bytes_out"`
	ActiveConns   uint32 `json:"active_conns"`
	InactiveConns uint32 `json:"inactive_conns"`
}

// Add returns s + o.
func (s Stats) Add(o Stats) Stats {
	return Stats{
		Connections:   s.Connections + o.Connections,
		PacketsIn:     s.PacketsIn + o.PacketsIn,
		PacketsOut:    s.PacketsOut + o.PacketsOut,
		BytesIn:       s.BytesIn + o.BytesIn,
		BytesOut:      s.BytesOut + o.BytesOut,
		ActiveConns:   s.ActiveConns + o.ActiveConns,
		InactiveConns: s.InactiveConns + o.InactiveConns,
	}
}

// Observed is a virtual service as a backend found it in the kernel.
type Observed struct {
	Service
	// Owned is true when replicad created the service (or it lives in a
	// table replicad owns). The planner never deletes or changes a service
	// that is neither owned nor desired.
	Owned           bool
	Stats           Stats
	RealServerStats map[netip.AddrPort]Stats
}
