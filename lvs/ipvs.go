package lvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"

	"github.com/replicad/replicad/lvs/model"
	"github.com/replicad/replicad/lvs/plan"
)

// IPVS is the backend on the kernel's ip_vs, through cloudflare/ipvs.
//
// IPVS has no owner field, so the backend records the keys of the services
// it created in an OwnedStore; everything else in the table is foreign and
// left alone unless the configuration names the same service (then it is
// adopted). IPVS has no transactions either: Apply stops at the first
// failing call and the next reconcile finishes the job.
type IPVS struct {
	client ipvs.Client
	owned  OwnedStore
	mu     sync.Mutex // serialises Apply and the owned set
}

var _ Backend = (*IPVS)(nil)

// NewIPVS returns the backend on an IPVS client (ipvs.New(), or an
// in-memory implementation in tests).
func NewIPVS(client ipvs.Client, owned OwnedStore) *IPVS {
	if owned == nil {
		owned = NewMemoryOwnedStore()
	}
	return &IPVS{client: client, owned: owned}
}

// OpenIPVS connects to ip_vs in the network namespace at netnsPath ("" for
// the current one).
func OpenIPVS(netnsPath string, owned OwnedStore) (*IPVS, error) {
	var c ipvs.Client
	err := inNetNS(netnsPath, func() error {
		var err error
		c, err = ipvs.New()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: ipvs: %v", ErrBackendUnavailable, err)
	}
	return NewIPVS(c, owned), nil
}

// Name implements Backend.
func (b *IPVS) Name() string { return model.BackendIPVS }

// Close implements Backend.
func (b *IPVS) Close() error {
	if c, ok := b.client.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

func ipvsFamily(f model.Family) ipvs.AddressFamily {
	if f == model.IPv6 {
		return ipvs.INET6
	}
	return ipvs.INET
}

var forwardToIPVS = map[model.Forward]ipvs.ForwardType{
	model.NAT:    ipvs.Masquerade,
	model.DR:     ipvs.DirectRoute,
	model.Tunnel: ipvs.Tunnel,
}

var tunnelToIPVS = map[model.TunnelType]ipvs.TunnelType{
	model.IPIP: ipvs.IPIP,
	model.GUE:  ipvs.GUE,
	model.GRE:  ipvs.GRE,
}

// toIPVSService converts a model service as ipvsadm would set it: netmask
// all-ones unless persistence asks for a prefix.
func toIPVSService(s model.Service) ipvs.Service {
	k := s.Key
	out := ipvs.Service{
		Family:    ipvsFamily(k.Family),
		Scheduler: string(s.Scheduler),
		Netmask:   netmask.MaskFrom(k.Family.Bits(), k.Family.Bits()),
	}
	if k.IsFWMark() {
		out.FWMark = k.FWMark
	} else {
		out.Protocol = ipvs.Protocol(k.Protocol)
		out.Address = k.Addr
		out.Port = k.Port
	}
	if s.Persistence.Enabled() {
		out.Flags = ipvs.ServicePersistent
		out.Timeout = uint32(s.Persistence.Timeout.Seconds())
		out.Netmask = netmask.MaskFrom(s.Persistence.PrefixLen, k.Family.Bits())
	}
	return out
}

func toIPVSDestination(k model.Key, rs model.RealServer) ipvs.Destination {
	d := ipvs.Destination{
		Address:   rs.Addr.Addr(),
		Port:      rs.Addr.Port(),
		Family:    ipvsFamily(model.FamilyOf(rs.Addr.Addr())),
		FwdMethod: forwardToIPVS[rs.Forward],
		Weight:    rs.Weight,
	}
	if rs.Forward == model.Tunnel {
		d.TunnelType = tunnelToIPVS[rs.Tunnel]
		d.TunnelPort = rs.TunnelPort
	}
	return d
}

// fromIPVSService converts back; ok is false for services the model cannot
// describe (SCTP), which are then invisible to the planner.
func fromIPVSService(s ipvs.Service) (model.Service, bool) {
	var out model.Service
	fam := model.IPv4
	if s.Family == ipvs.INET6 {
		fam = model.IPv6
	}
	if s.FWMark != 0 {
		out.Key = model.Key{Family: fam, FWMark: s.FWMark}
	} else {
		if s.Protocol != ipvs.TCP && s.Protocol != ipvs.UDP {
			return out, false
		}
		out.Key = model.Key{Family: fam, Protocol: model.Protocol(s.Protocol), Addr: s.Address.Unmap(), Port: s.Port}
	}
	out.Scheduler = model.Scheduler(s.Scheduler)
	if s.Flags&ipvs.ServicePersistent != 0 {
		bits := s.Netmask.Bits()
		if bits < 0 {
			bits = fam.Bits()
		}
		out.Persistence = model.Persistence{Timeout: secs(s.Timeout), PrefixLen: bits}
	}
	return out, true
}

func fromIPVSDestination(d ipvs.DestinationExtended) model.RealServer {
	rs := model.RealServer{Addr: netip.AddrPortFrom(d.Address.Unmap(), d.Port), Weight: d.Weight}
	for f, t := range forwardToIPVS {
		if t == d.FwdMethod {
			rs.Forward = f
		}
	}
	if rs.Forward == model.Tunnel {
		for m, t := range tunnelToIPVS {
			if t == d.TunnelType {
				rs.Tunnel = m
			}
		}
		rs.TunnelPort = d.TunnelPort
	}
	return rs
}

func ipvsStats(s ipvs.Stats, s64 ipvs.Stats) model.Stats {
	if s64 != (ipvs.Stats{}) {
		s = s64
	}
	return model.Stats{
		Connections: s.Connections,
		PacketsIn:   s.IncomingPackets, PacketsOut: s.OutgoingPackets,
		BytesIn: s.IncomingBytes, BytesOut: s.OutgoingBytes,
	}
}

// Observe implements Backend.
func (b *IPVS) Observe(_ context.Context) ([]model.Observed, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	owned, err := b.owned.Load()
	if err != nil {
		return nil, err
	}
	svcs, err := b.client.Services()
	if errors.Is(err, os.ErrNotExist) {
		// cloudflare/ipvs reports an empty table this way.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ipvs: list services: %w", err)
	}
	var out []model.Observed
	for _, s := range svcs {
		ms, ok := fromIPVSService(s.Service)
		if !ok {
			continue
		}
		o := model.Observed{Service: ms, Owned: owned[ms.Key], Stats: ipvsStats(s.Stats, s.Stats64), RealServerStats: map[netip.AddrPort]model.Stats{}}
		dests, err := b.client.Destinations(s.Service)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("ipvs: list real servers of %s: %w", ms.Key, err)
		}
		for _, d := range dests {
			rs := fromIPVSDestination(d)
			o.RealServers = append(o.RealServers, rs)
			st := ipvsStats(d.Stats, d.Stats64)
			st.ActiveConns, st.InactiveConns = d.ActiveConnections, d.InactiveConnections
			o.RealServerStats[rs.Addr] = st
		}
		o.Normalize()
		out = append(out, o)
	}
	return out, nil
}

// Apply implements Backend.
func (b *IPVS) Apply(_ context.Context, _ []model.Service, ops []plan.Op) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	owned, err := b.owned.Load()
	if err != nil {
		return err
	}
	changed := false
	defer func() {
		if changed {
			// Record what exists even when a later call failed.
			if serr := b.owned.Save(owned); serr != nil && err == nil {
				err = serr
			}
		}
	}()
	for _, op := range ops {
		svc := toIPVSService(op.Service)
		switch op.Kind {
		case plan.CreateService:
			err = b.client.CreateService(svc)
		case plan.UpdateService:
			err = b.client.UpdateService(svc)
		case plan.DeleteService:
			err = b.client.RemoveService(svc)
		case plan.CreateRealServer:
			err = b.client.CreateDestination(svc, toIPVSDestination(op.Service.Key, op.RealServer))
		case plan.UpdateRealServer:
			err = b.client.UpdateDestination(svc, toIPVSDestination(op.Service.Key, op.RealServer))
		case plan.DeleteRealServer:
			err = b.client.RemoveDestination(svc, toIPVSDestination(op.Service.Key, op.RealServer))
		}
		if err != nil {
			return fmt.Errorf("ipvs: %s: %w", op, err)
		}
		switch op.Kind {
		case plan.DeleteService:
			if owned[op.Service.Key] {
				delete(owned, op.Service.Key)
				changed = true
			}
		default:
			if !owned[op.Service.Key] {
				owned[op.Service.Key] = true
				changed = true
			}
		}
	}
	return nil
}

func secs(s uint32) time.Duration { return time.Duration(s) * time.Second }
