package nftrules

// A small model of the kernel's nf_tables, enough to run the objects this
// package generates: it applies a batch (checking that every reference
// exists and that nothing still referenced is deleted), then pushes packets
// through the NAT chains and reports where each new connection goes.
//
// jhash is replaced by FNV: the simulator checks the contract (same input,
// same slot) not the kernel's bucket numbers.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

type simSet struct {
	set   *nftables.Set
	elems map[string]simElem
}

type simElem struct {
	val     []byte
	verdict *expr.Verdict
	expires time.Time // zero: never
}

type simKernel struct {
	tableExists bool
	chains      map[string][]*nftables.Rule
	chainOrder  []string
	sets        map[string]*simSet // by name (anonymous: "__anon<ID>")
	anonByID    map[uint32]string
	now         time.Time
	numgen      map[*expr.Numgen]uint32
	rand        *rand.Rand
	nextAnon    int
}

func newSim() *simKernel {
	return &simKernel{
		chains:   map[string][]*nftables.Rule{},
		sets:     map[string]*simSet{},
		anonByID: map[uint32]string{},
		now:      time.Unix(1_000_000, 0),
		numgen:   map[*expr.Numgen]uint32{},
		rand:     rand.New(rand.NewPCG(1, 2)),
	}
}

// refs returns the chains and sets a rule refers to.
func (k *simKernel) refs(r *nftables.Rule) (chains, sets []string) {
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Verdict:
			if e.Chain != "" {
				chains = append(chains, e.Chain)
			}
		case *expr.Lookup:
			name := e.SetName
			if n, ok := k.anonByID[e.SetID]; ok && strings.HasPrefix(e.SetName, "__map") {
				name = n
			}
			sets = append(sets, name)
			if s, ok := k.sets[name]; ok {
				for _, el := range s.elems {
					if el.verdict != nil && el.verdict.Chain != "" {
						chains = append(chains, el.verdict.Chain)
					}
				}
			}
		case *expr.Dynset:
			sets = append(sets, e.SetName)
		}
	}
	return chains, sets
}

func (k *simKernel) referenced(chain, set string) bool {
	// Verdict-map elements hold their chains (chain->use in the kernel).
	for _, s := range k.sets {
		for _, el := range s.elems {
			if chain != "" && el.verdict != nil && el.verdict.Chain == chain {
				return true
			}
		}
	}
	for _, rules := range k.chains {
		for _, r := range rules {
			cs, ss := k.refs(r)
			if (chain != "" && slices.Contains(cs, chain)) || (set != "" && slices.Contains(ss, set)) {
				return true
			}
		}
	}
	return false
}

func (k *simKernel) apply(actions []Action) error {
	// nf_tables batches are all-or-nothing: work on a copy.
	saved := k.clone()
	for i, a := range actions {
		if err := k.step(a); err != nil {
			*k = *saved
			return fmt.Errorf("action %d (%s): %w", i, a, err)
		}
	}
	return nil
}

func (k *simKernel) clone() *simKernel {
	c := *k
	c.chains = map[string][]*nftables.Rule{}
	for n, r := range k.chains {
		c.chains[n] = slices.Clone(r)
	}
	c.chainOrder = slices.Clone(k.chainOrder)
	c.sets = map[string]*simSet{}
	for n, s := range k.sets {
		e := map[string]simElem{}
		for kk, v := range s.elems {
			e[kk] = v
		}
		c.sets[n] = &simSet{set: s.set, elems: e}
	}
	c.anonByID = map[uint32]string{}
	for id, n := range k.anonByID {
		c.anonByID[id] = n
	}
	return &c
}

func (k *simKernel) step(a Action) error {
	switch a.Kind {
	case DelTable:
		if !k.tableExists {
			return fmt.Errorf("ENOENT table")
		}
		fresh := newSim()
		fresh.now, fresh.numgen, fresh.rand = k.now, k.numgen, k.rand
		*k = *fresh
	case AddTable:
		k.tableExists = true
	case AddChain:
		if !k.tableExists {
			return fmt.Errorf("ENOENT table")
		}
		if _, ok := k.chains[a.Chain.Name]; !ok {
			k.chains[a.Chain.Name] = nil
			k.chainOrder = append(k.chainOrder, a.Chain.Name)
		}
	case FlushChain:
		if _, ok := k.chains[a.Chain.Name]; !ok {
			return fmt.Errorf("ENOENT chain %s", a.Chain.Name)
		}
		// Anonymous sets bound to the flushed rules go with them.
		for _, r := range k.chains[a.Chain.Name] {
			for _, e := range r.Exprs {
				if l, ok := e.(*expr.Lookup); ok && strings.HasPrefix(l.SetName, "__anon") {
					delete(k.sets, l.SetName)
				}
			}
		}
		k.chains[a.Chain.Name] = nil
	case DelChain:
		if _, ok := k.chains[a.Chain.Name]; !ok {
			return fmt.Errorf("ENOENT chain %s", a.Chain.Name)
		}
		if len(k.chains[a.Chain.Name]) > 0 {
			return fmt.Errorf("EBUSY chain %s not empty", a.Chain.Name)
		}
		if k.referenced(a.Chain.Name, "") {
			return fmt.Errorf("EBUSY chain %s still referenced", a.Chain.Name)
		}
		delete(k.chains, a.Chain.Name)
		k.chainOrder = slices.DeleteFunc(k.chainOrder, func(n string) bool { return n == a.Chain.Name })
	case AddSet:
		name := a.Set.Name
		if a.Set.Anonymous {
			if name != "__map%d" || a.Set.ID == 0 || !a.Set.Constant {
				return fmt.Errorf("anonymous set must be constant with a template name and an id: %+v", a.Set)
			}
			k.nextAnon++
			name = fmt.Sprintf("__anon%d", k.nextAnon)
			k.anonByID[a.Set.ID] = name
		} else if s, ok := k.sets[name]; ok {
			if s.set.Timeout != a.Set.Timeout || s.set.KeyType.Name != a.Set.KeyType.Name {
				return fmt.Errorf("EEXIST set %s with other parameters", name)
			}
			for _, e := range a.Elems {
				if _, dup := s.elems[string(e.Key)]; dup {
					return fmt.Errorf("EEXIST element %x in %s", e.Key, name)
				}
				s.elems[string(e.Key)] = simElem{val: e.Val, verdict: e.VerdictData}
			}
			return nil
		}
		s := &simSet{set: a.Set, elems: map[string]simElem{}}
		for _, e := range a.Elems {
			if e.VerdictData != nil {
				if _, ok := k.chains[e.VerdictData.Chain]; !ok {
					return fmt.Errorf("ENOENT set element jumps to missing chain %s", e.VerdictData.Chain)
				}
			}
			if _, dup := s.elems[string(e.Key)]; dup {
				return fmt.Errorf("EEXIST element %x", e.Key)
			}
			s.elems[string(e.Key)] = simElem{val: e.Val, verdict: e.VerdictData}
		}
		k.sets[name] = s
	case FlushSet:
		set, ok := k.sets[a.Set.Name]
		if !ok {
			return fmt.Errorf("ENOENT set %s", a.Set.Name)
		}
		set.elems = map[string]simElem{}
	case DelSet:
		if _, ok := k.sets[a.Set.Name]; !ok {
			return fmt.Errorf("ENOENT set %s", a.Set.Name)
		}
		if k.referenced("", a.Set.Name) {
			return fmt.Errorf("EBUSY set %s still referenced", a.Set.Name)
		}
		delete(k.sets, a.Set.Name)
	case AddRule:
		name := a.Rule.Chain.Name
		if _, ok := k.chains[name]; !ok {
			return fmt.Errorf("ENOENT rule for missing chain %s", name)
		}
		cs, ss := k.refs(a.Rule)
		for _, c := range cs {
			if _, ok := k.chains[c]; !ok {
				return fmt.Errorf("ENOENT rule in %s refers to missing chain %s", name, c)
			}
		}
		for _, s := range ss {
			if _, ok := k.sets[s]; !ok {
				return fmt.Errorf("ENOENT rule in %s refers to missing set %s", name, s)
			}
		}
		// Store a copy: the kernel does not share the caller's counters.
		r := *a.Rule
		r.Exprs = slices.Clone(a.Rule.Exprs)
		for i, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Counter:
				cc := *e
				r.Exprs[i] = &cc
			case *expr.Lookup:
				// The kernel binds the rule to the set itself; ids are
				// only meaningful within one batch.
				if strings.HasPrefix(e.SetName, "__map") {
					l := *e
					l.SetName = k.anonByID[e.SetID]
					r.Exprs[i] = &l
				}
			}
		}
		k.chains[name] = append(k.chains[name], &r)
	default:
		return fmt.Errorf("unknown action %v", a.Kind)
	}
	return nil
}

func (k *simKernel) snapshot() Snapshot {
	snap := Snapshot{TableExists: k.tableExists, Chains: map[string][]*nftables.Rule{}}
	for n, r := range k.chains {
		snap.Chains[n] = r
	}
	for n, s := range k.sets {
		if s.set.Anonymous {
			snap.Sets = append(snap.Sets, "__map"+strings.TrimPrefix(n, "__anon"))
			continue
		}
		snap.Sets = append(snap.Sets, n)
	}
	slices.Sort(snap.Sets)
	return snap
}

// packet is the first packet of a new connection.
type packet struct {
	src, dst netip.Addr
	proto    byte
	dport    uint16
	mark     uint32
}

func (p packet) network() []byte {
	if p.src.Is4() {
		h := make([]byte, 20)
		s, d := p.src.As4(), p.dst.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		return h
	}
	h := make([]byte, 40)
	s, d := p.src.As16(), p.dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return h
}

type verdict struct {
	dnat   netip.AddrPort // valid when the packet was NATed
	natted bool
}

var errNoMatch = fmt.Errorf("rule did not match")

// connect runs the first packet of a connection through prerouting.
func (k *simKernel) connect(p packet) (verdict, error) {
	v, done, err := k.runChain(ChainPrerouting, p, 0)
	if err != nil {
		return verdict{}, err
	}
	if !done {
		return verdict{}, nil
	}
	return v, nil
}

// runChain returns done=true when a terminal verdict (NAT) was reached.
func (k *simKernel) runChain(name string, p packet, depth int) (verdict, bool, error) {
	if depth > 16 {
		return verdict{}, false, fmt.Errorf("chain depth exceeded at %s", name)
	}
	rules, ok := k.chains[name]
	if !ok {
		return verdict{}, false, fmt.Errorf("no chain %s", name)
	}
	for _, r := range rules {
		v, done, next, err := k.runRule(r, p, depth)
		if err == errNoMatch {
			continue
		}
		if err != nil {
			return verdict{}, false, err
		}
		if done {
			return v, true, nil
		}
		if next != nil {
			sub, subDone, err := k.runChain(next.Chain, p, depth+1)
			if err != nil || subDone {
				return sub, subDone, err
			}
			if next.Kind == expr.VerdictGoto {
				return verdict{}, false, nil
			}
		}
	}
	return verdict{}, false, nil
}

func (k *simKernel) setByLookup(name string, id uint32) (*simSet, error) {
	if strings.HasPrefix(name, "__map") {
		name = k.anonByID[id]
	}
	s, ok := k.sets[name]
	if !ok {
		return nil, fmt.Errorf("no set %s", name)
	}
	return s, nil
}

func (k *simKernel) runRule(r *nftables.Rule, p packet, depth int) (v verdict, done bool, next *expr.Verdict, err error) {
	regs := map[uint32][]byte{}
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Meta:
			switch e.Key {
			case expr.MetaKeyNFPROTO:
				f := byte(unix.NFPROTO_IPV4)
				if p.src.Is6() {
					f = unix.NFPROTO_IPV6
				}
				regs[e.Register] = []byte{f}
			case expr.MetaKeyL4PROTO:
				regs[e.Register] = []byte{p.proto}
			case expr.MetaKeyMARK:
				regs[e.Register] = binaryutil.NativeEndian.PutUint32(p.mark)
			default:
				return v, false, nil, fmt.Errorf("meta key %d not simulated", e.Key)
			}
		case *expr.Payload:
			var hdr []byte
			switch e.Base {
			case expr.PayloadBaseNetworkHeader:
				hdr = p.network()
			case expr.PayloadBaseTransportHeader:
				hdr = binary.BigEndian.AppendUint16([]byte{0x9c, 0x40}, p.dport)
			}
			if int(e.Offset+e.Len) > len(hdr) {
				return v, false, nil, fmt.Errorf("payload %d+%d beyond header %d", e.Offset, e.Len, len(hdr))
			}
			regs[e.DestRegister] = slices.Clone(hdr[e.Offset : e.Offset+e.Len])
		case *expr.Cmp:
			if e.Op != expr.CmpOpEq {
				return v, false, nil, fmt.Errorf("cmp op %d not simulated", e.Op)
			}
			if !bytes.Equal(regs[e.Register], e.Data) {
				return v, false, nil, errNoMatch
			}
		case *expr.Bitwise:
			src := regs[e.SourceRegister]
			if len(src) != int(e.Len) {
				return v, false, nil, fmt.Errorf("bitwise length %d on %d bytes", e.Len, len(src))
			}
			out := make([]byte, e.Len)
			for i := range out {
				out[i] = src[i]&e.Mask[i] ^ e.Xor[i]
			}
			regs[e.DestRegister] = out
		case *expr.Numgen:
			var n uint32
			if e.Type == unix.NFT_NG_INCREMENTAL {
				n = k.numgen[e] % e.Modulus
				k.numgen[e]++
			} else {
				n = k.rand.Uint32N(e.Modulus)
			}
			regs[e.Register] = binaryutil.NativeEndian.PutUint32(n + e.Offset)
		case *expr.Hash:
			f := fnv.New32a()
			binary.Write(f, binary.BigEndian, e.Seed)
			f.Write(regs[e.SourceRegister][:e.Length])
			regs[e.DestRegister] = binaryutil.NativeEndian.PutUint32(f.Sum32()%e.Modulus + e.Offset)
		case *expr.Immediate:
			regs[e.Register] = e.Data
		case *expr.Counter:
			e.Packets++
		case *expr.Lookup:
			s, err := k.setByLookup(e.SetName, e.SetID)
			if err != nil {
				return v, false, nil, err
			}
			el, ok := s.elems[string(regs[e.SourceRegister])]
			if ok && !el.expires.IsZero() && !k.now.Before(el.expires) {
				delete(s.elems, string(regs[e.SourceRegister]))
				ok = false
			}
			if !ok {
				return v, false, nil, errNoMatch
			}
			if e.IsDestRegSet && e.DestRegister == 0 {
				return v, false, el.verdict, nil
			}
			if e.IsDestRegSet {
				regs[e.DestRegister] = el.val
			}
		case *expr.Dynset:
			s, err := k.setByLookup(e.SetName, e.SetID)
			if err != nil {
				return v, false, nil, err
			}
			key := string(regs[e.SrcRegKey])
			if s.set.IsMap != (e.SrcRegData != 0) {
				return v, false, nil, fmt.Errorf("dynset data register %d on a set with IsMap=%v", e.SrcRegData, s.set.IsMap)
			}
			switch e.Operation {
			case unix.NFT_DYNSET_OP_UPDATE:
				el, ok := s.elems[key]
				if !ok || (!el.expires.IsZero() && !k.now.Before(el.expires)) {
					el = simElem{val: regs[e.SrcRegData]}
				}
				el.expires = k.now.Add(s.set.Timeout)
				s.elems[key] = el
			default:
				return v, false, nil, fmt.Errorf("dynset op %d not simulated", e.Operation)
			}
		case *expr.NAT:
			a, ok := netip.AddrFromSlice(regs[e.RegAddrMin])
			if !ok {
				return v, false, nil, fmt.Errorf("nat address register holds %x", regs[e.RegAddrMin])
			}
			var port uint16
			if e.RegProtoMin != 0 {
				port = binary.BigEndian.Uint16(regs[e.RegProtoMin])
			}
			return verdict{dnat: netip.AddrPortFrom(a, port), natted: true}, true, nil, nil
		case *expr.Verdict:
			return v, false, e, nil
		default:
			return v, false, nil, fmt.Errorf("expression %T not simulated", e)
		}
	}
	return v, false, nil, nil
}
