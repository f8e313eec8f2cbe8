package nftrules

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/replicad/replicad/lvs/model"
	"github.com/replicad/replicad/lvs/sched"
)

// Registers: reg 1 is 16 bytes (an IPv6 address fits), reg 2 follows it.
const (
	reg1 = unix.NFT_REG_1
	reg2 = unix.NFT_REG_2
)

func nfproto(f model.Family) byte {
	if f == model.IPv6 {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

// addrPayload loads the source or destination address into reg 1.
func addrPayload(f model.Family, source bool) *expr.Payload {
	off, n := uint32(16), uint32(4) // IPv4 daddr
	if source {
		off = 12
	}
	if f == model.IPv6 {
		off, n = 24, 16
		if source {
			off = 8
		}
	}
	return &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}
}

func addrLen(f model.Family) uint32 {
	if f == model.IPv6 {
		return 16
	}
	return 4
}

// familyMatch is `meta nfproto ipv4|ipv6`: the kernel does not need it after
// dispatch, but without it nft prints addresses as raw @nh payloads.
func familyMatch(f model.Family) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{nfproto(f)}},
	}
}

// maskedSource loads the client address masked to the persistence prefix.
func maskedSource(s model.Service) []expr.Any {
	out := append(familyMatch(s.Key.Family), addrPayload(s.Key.Family, true))
	bits := s.Key.Family.Bits()
	if p := s.Persistence.PrefixLen; p < bits {
		pfx := netip.PrefixFrom(netip.IPv6Unspecified(), p)
		if s.Key.Family == model.IPv4 {
			pfx = netip.PrefixFrom(netip.IPv4Unspecified(), p)
		}
		out = append(out, &expr.Bitwise{
			SourceRegister: reg1, DestRegister: reg1, Len: addrLen(s.Key.Family),
			Mask: prefixMask(pfx), Xor: make([]byte, addrLen(s.Key.Family)),
		})
	}
	return out
}

func prefixMask(p netip.Prefix) []byte {
	n := p.Addr().BitLen() / 8
	m := make([]byte, n)
	for i := range p.Bits() {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

func u32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }

// DispatchRules returns one rule per service (in the order given) that sends
// the service's new connections to its chain.
func (l Layout) DispatchRules(services []model.Service) []*nftables.Rule {
	dispatch := l.BaseChains()[2]
	var out []*nftables.Rule
	for _, s := range services {
		k := s.Key
		ex := familyMatch(k.Family)
		if k.IsFWMark() {
			ex = append(ex,
				&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: u32(k.FWMark)},
			)
		} else {
			ex = append(ex,
				addrPayload(k.Family, false),
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: k.Addr.AsSlice()},
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{byte(k.Protocol)}},
			)
			if k.Port != 0 {
				ex = append(ex,
					&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
					&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(k.Port)},
				)
			}
		}
		ex = append(ex, &expr.Verdict{Kind: expr.VerdictJump, Chain: ServiceChainName(k)})
		out = append(out, &nftables.Rule{Table: l.Table, Chain: dispatch, Exprs: ex})
	}
	return out
}

// Slots returns the pick table of a service: slot -> index into
// s.Active(). rr uses one slot per server; the weighted schedulers use one
// period of IPVS's wrr order, scaled to at most MaxSlots.
func Slots(s model.Service) []int {
	active := s.Active()
	if len(active) == 0 {
		return nil
	}
	if s.Scheduler == model.RR {
		out := make([]int, len(active))
		for i := range out {
			out[i] = i
		}
		return out
	}
	w := make([]uint32, len(active))
	var total uint64
	for i, rs := range active {
		w[i] = rs.Weight
		total += uint64(rs.Weight)
	}
	seq := sched.WRRSequence(w)
	if len(seq) > MaxSlots {
		for i := range w {
			w[i] = uint32(max(1, uint64(w[i])*MaxSlots/total))
		}
		seq = sched.WRRSequence(w)
	}
	return seq
}

// ServiceRules returns the rules of a service's chain and the elements of
// its pick map (create the map with them before the rules, in the same
// batch).
func (l Layout) ServiceRules(s model.Service) ([]*nftables.Rule, []nftables.SetElement, error) {
	if err := checkExpressible(s); err != nil {
		return nil, nil, err
	}
	chain := l.ServiceChain(s.Key)
	rules := []*nftables.Rule{{
		Table: l.Table, Chain: chain,
		Exprs:    []expr.Any{&expr.Counter{}},
		UserData: comment(serviceComment(s)),
	}}
	active := s.Active()
	gotoRS := func(rs model.RealServer) *expr.Verdict {
		return &expr.Verdict{Kind: expr.VerdictGoto, Chain: RealServerChainName(s.Key, rs.Addr)}
	}
	if s.Persistence.Enabled() {
		// A client remembered by an active server goes back to it.
		// Quiesced servers get no rule here (and their sets are flushed),
		// so their clients are scheduled anew.
		for _, rs := range active {
			ex := append(maskedSource(s),
				&expr.Lookup{SourceRegister: reg1, SetName: PersistSetName(s.Key, rs.Addr)},
				gotoRS(rs),
			)
			rules = append(rules, &nftables.Rule{Table: l.Table, Chain: chain, Exprs: ex})
		}
	}
	slots := Slots(s)
	if len(slots) == 0 {
		return rules, nil, nil
	}
	elems := make([]nftables.SetElement, len(slots))
	for i, a := range slots {
		elems[i] = nftables.SetElement{Key: u32(uint32(i)), VerdictData: gotoRS(active[a])}
	}
	var ex []expr.Any
	switch s.Scheduler {
	case model.RR, model.WRR:
		ex = []expr.Any{&expr.Numgen{Register: reg1, Modulus: uint32(len(slots)), Type: unix.NFT_NG_INCREMENTAL}}
	case model.Random:
		ex = []expr.Any{&expr.Numgen{Register: reg1, Modulus: uint32(len(slots)), Type: unix.NFT_NG_RANDOM}}
	case model.SH, model.DH:
		ex = append(familyMatch(s.Key.Family),
			addrPayload(s.Key.Family, s.Scheduler == model.SH),
			&expr.Hash{SourceRegister: reg1, DestRegister: reg1, Length: addrLen(s.Key.Family), Modulus: uint32(len(slots)), Seed: HashSeed, Type: expr.HashTypeJenkins},
		)
	}
	ex = append(ex, &expr.Lookup{SourceRegister: reg1, DestRegister: 0, IsDestRegSet: true, SetName: PickMapName(s.Key)})
	rules = append(rules, &nftables.Rule{Table: l.Table, Chain: chain, Exprs: ex})
	return rules, elems, nil
}

func checkExpressible(s model.Service) error {
	c, _ := model.CapabilitiesOf(model.BackendNFTables)
	if err := c.Check(model.BackendNFTables, s); err != nil {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	return nil
}

// RealServerRules returns the rules of one real server's chain: refresh the
// client's persistence entry (if the service has persistence), count, and
// rewrite the destination. connections presets the counter so that a
// rebuilt chain keeps its count.
func (l Layout) RealServerRules(s model.Service, rs model.RealServer, connections uint64) []*nftables.Rule {
	chain := l.RealServerChain(s.Key, rs.Addr)
	var rules []*nftables.Rule
	if persist := l.PersistSet(s, rs.Addr); persist != nil {
		// Add the client, or restart its timeout.
		ex := append(maskedSource(s),
			&expr.Dynset{SrcRegKey: reg1, SetName: persist.Name, Operation: unix.NFT_DYNSET_OP_UPDATE},
		)
		rules = append(rules, &nftables.Rule{Table: l.Table, Chain: chain, Exprs: ex})
	}
	var ex []expr.Any
	if s.Key.Protocol != 0 && rs.Addr.Port() != 0 {
		// Not needed by the kernel (dispatch matched the protocol), but nft
		// refuses to print a port mapping without it.
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{byte(s.Key.Protocol)}},
		)
	}
	ex = append(ex,
		&expr.Counter{Packets: connections},
		&expr.Immediate{Register: reg1, Data: rs.Addr.Addr().AsSlice()},
	)
	nat := &expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(nfproto(s.Key.Family)), RegAddrMin: reg1}
	if rs.Addr.Port() != 0 {
		ex = append(ex, &expr.Immediate{Register: reg2, Data: binaryutil.BigEndian.PutUint16(rs.Addr.Port())})
		nat.RegProtoMin = reg2
	}
	ex = append(ex, nat)
	rules = append(rules, &nftables.Rule{Table: l.Table, Chain: chain, Exprs: ex, UserData: comment(realServerComment(rs))})
	return rules
}

// expectedRules is how many rules ServiceRules renders for s; Decode uses it
// to notice a chain someone edited.
func expectedRules(s model.Service) int {
	n := 1
	if s.Persistence.Enabled() {
		n += len(s.Active()) // hits
	}
	if len(s.Active()) > 0 {
		n++ // pick
	}
	return n
}
