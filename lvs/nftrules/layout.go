package nftrules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"

	"github.com/replicad/replicad/lvs/model"
)

// DefaultTable is the name of the table replicad owns.
const DefaultTable = "replicad_lvs"

// HashSeed seeds jhash for sh and dh. It is fixed so that a restart (which
// re-renders the rules) keeps every client on the server it had.
const HashSeed = 0x72706c76 // "rplv"

// MaxSlots caps the size of a weighted slot map.
const MaxSlots = 4096

// Names of the fixed chains.
const (
	ChainPrerouting = "prerouting"
	ChainOutput     = "output"
	ChainDispatch   = "dispatch"
)

// Layout names and builds the objects of one replicad table.
type Layout struct {
	Table *nftables.Table
}

// NewLayout returns the layout of the inet table called name.
func NewLayout(name string) Layout {
	return Layout{Table: &nftables.Table{Name: name, Family: nftables.TableFamilyINet}}
}

// BaseChains returns the two NAT base chains and the dispatch chain.
func (l Layout) BaseChains() []*nftables.Chain {
	prio := nftables.ChainPriorityNATDest
	accept := nftables.ChainPolicyAccept
	return []*nftables.Chain{
		{Name: ChainPrerouting, Table: l.Table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: prio, Policy: &accept},
		{Name: ChainOutput, Table: l.Table, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput, Priority: prio, Policy: &accept},
		{Name: ChainDispatch, Table: l.Table},
	}
}

// BaseRules returns the jump from each base chain to the dispatch chain.
func (l Layout) BaseRules() []*nftables.Rule {
	var out []*nftables.Rule
	for _, c := range l.BaseChains()[:2] {
		out = append(out, &nftables.Rule{Table: l.Table, Chain: c, Exprs: []expr.Any{
			&expr.Verdict{Kind: expr.VerdictJump, Chain: ChainDispatch},
		}})
	}
	return out
}

func sanitize(s string) string {
	return strings.NewReplacer(".", "_", ":", "_", "[", "", "]", "", "/", "_").Replace(s)
}

// ServiceChainName is the chain of a virtual service.
func ServiceChainName(k model.Key) string {
	if k.IsFWMark() {
		return "svc_fwmark_" + strconv.FormatUint(uint64(k.FWMark), 10) + "_" + k.Family.String()
	}
	return "svc_" + k.Protocol.String() + "_" + sanitize(k.Addr.String()) + "_" + strconv.Itoa(int(k.Port))
}

// RealServerChainName is the chain of one real server of a service.
func RealServerChainName(k model.Key, addr netip.AddrPort) string {
	return ServiceChainName(k) + "_rs_" + sanitize(addr.Addr().String()) + "_" + strconv.Itoa(int(addr.Port()))
}

// PersistSetName is the persistence set of one real server.
func PersistSetName(k model.Key, addr netip.AddrPort) string {
	return RealServerChainName(k, addr) + "_persist"
}

// PickMapName is the verdict map a service's scheduler indexes.
func PickMapName(k model.Key) string { return ServiceChainName(k) + "_pick" }

// PickMap returns the (empty) verdict map of a service: slot -> goto the
// real server's chain. Keys are host-order integers (what numgen and hash
// write); saying so lets `nft list` print them as 0, 1, 2...
func (l Layout) PickMap(k model.Key) *nftables.Set {
	return &nftables.Set{
		Table: l.Table, Name: PickMapName(k), IsMap: true,
		KeyType: nftables.TypeInteger, DataType: nftables.TypeVerdict,
		KeyByteOrder: binaryutil.NativeEndian,
	}
}

// ServiceChain returns the chain object of a service.
func (l Layout) ServiceChain(k model.Key) *nftables.Chain {
	return &nftables.Chain{Name: ServiceChainName(k), Table: l.Table}
}

// RealServerChain returns the chain object of a real server.
func (l Layout) RealServerChain(k model.Key, addr netip.AddrPort) *nftables.Chain {
	return &nftables.Chain{Name: RealServerChainName(k, addr), Table: l.Table}
}

// PersistSet returns the persistence set of a real server (the masked
// addresses of the clients it holds, each with its own expiry), or nil when
// the service has no persistence.
func (l Layout) PersistSet(s model.Service, addr netip.AddrPort) *nftables.Set {
	if !s.Persistence.Enabled() {
		return nil
	}
	key := nftables.TypeIPAddr
	if s.Key.Family == model.IPv6 {
		key = nftables.TypeIP6Addr
	}
	return &nftables.Set{
		Table:      l.Table,
		Name:       PersistSetName(s.Key, addr),
		HasTimeout: true,
		Dynamic:    true,
		Timeout:    s.Persistence.Timeout,
		KeyType:    key,
	}
}

// Comments replicad writes on its rules; Decode reads them back.
const (
	svcCommentPrefix = "replicad svc "
	rsCommentPrefix  = "replicad rs "
)

func serviceComment(s model.Service) string {
	return fmt.Sprintf("%skey=%s sched=%s persist=%s prefix=%d", svcCommentPrefix, s.Key, s.Scheduler, s.Persistence.Timeout, s.Persistence.PrefixLen)
}

func realServerComment(rs model.RealServer) string {
	return fmt.Sprintf("%saddr=%s weight=%d fwd=%s", rsCommentPrefix, rs.Addr, rs.Weight, rs.Forward)
}

func comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

// Comment returns the comment of a rule, if any.
func Comment(r *nftables.Rule) (string, bool) {
	return userdata.GetString(r.UserData, userdata.TypeComment)
}
