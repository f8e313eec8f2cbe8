package nftrules

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/replicad/replicad/lvs/model"
	"github.com/replicad/replicad/lvs/plan"
	"github.com/replicad/replicad/lvs/sched"
)

var layout = NewLayout(DefaultTable)

func key(s string) model.Key {
	k, err := model.ParseKey(s)
	if err != nil {
		panic(err)
	}
	return k
}

func rs(addr string, w uint32) model.RealServer {
	return model.RealServer{Addr: netip.MustParseAddrPort(addr), Weight: w, Forward: model.NAT}
}

func service(k string, s model.Scheduler, servers ...model.RealServer) model.Service {
	svc := model.Service{Key: key(k), Scheduler: s, RealServers: servers}
	svc.Normalize()
	return svc
}

// converge plans desired against what the simulated kernel holds, builds
// the batch and applies it; it fails the test on any kernel error.
func converge(t *testing.T, k *simKernel, desired ...model.Service) []Action {
	t.Helper()
	d := Decode(k.snapshot())
	ops, err := plan.Plan(desired, d.Services)
	if err != nil {
		t.Fatal(err)
	}
	counters := Counters{}
	for _, o := range d.Services {
		counters[o.Key] = map[netip.AddrPort]uint64{}
		for a, st := range o.RealServerStats {
			counters[o.Key][a] = st.Connections
		}
	}
	batch, err := BuildBatch(layout, desired, ops, counters, StateOf(k.snapshot(), d))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.apply(batch); err != nil {
		t.Fatalf("kernel rejected batch: %v\nbatch:\n%s", err, dump(batch))
	}
	after := Decode(k.snapshot())
	if after.Damaged != "" {
		t.Fatalf("table damaged after our own batch: %s", after.Damaged)
	}
	again, err := plan.Plan(desired, after.Services)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 0 {
		t.Fatalf("not converged; still to do: %v", again)
	}
	return batch
}

func dump(batch []Action) string {
	var b strings.Builder
	for _, a := range batch {
		fmt.Fprintln(&b, a)
	}
	return b.String()
}

var client = netip.MustParseAddr("192.0.2.10")

func tcpTo(k string) packet {
	kk := key(k)
	return packet{src: client, dst: kk.Addr, proto: byte(kk.Protocol), dport: kk.Port}
}

// sequence connects n times and returns the real servers' last octets/ports.
func sequence(t *testing.T, k *simKernel, p packet, n int) []netip.AddrPort {
	t.Helper()
	var out []netip.AddrPort
	for range n {
		v, err := k.connect(p)
		if err != nil {
			t.Fatal(err)
		}
		if !v.natted {
			out = append(out, netip.AddrPort{})
			continue
		}
		out = append(out, v.dnat)
	}
	return out
}

func names(seq []netip.AddrPort, servers []model.RealServer) string {
	var b strings.Builder
	for _, a := range seq {
		i := slices.IndexFunc(servers, func(r model.RealServer) bool { return r.Addr == a })
		if i < 0 {
			b.WriteByte('-')
			continue
		}
		b.WriteByte(byte('A' + i))
	}
	return b.String()
}

// reference runs the sched package's implementation on the same servers.
func reference(t *testing.T, s model.Service, n int) string {
	t.Helper()
	ref, err := sched.New(s.Scheduler, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := make([]sched.Server, len(s.RealServers))
	for i, r := range s.RealServers {
		srv[i] = sched.Server{Name: string(rune('A' + i)), Weight: int(r.Weight)}
	}
	var b strings.Builder
	for range n {
		if i := ref.Pick(srv, sched.Conn{Src: client, Dst: s.Key.Addr}); i >= 0 {
			b.WriteByte(byte('A' + i))
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

func TestRRRotatesExactlyLikeIPVS(t *testing.T) {
	k := newSim()
	s := service("tcp/10.0.0.100:80", model.RR, rs("10.0.1.1:8080", 1), rs("10.0.1.2:8080", 7), rs("10.0.1.3:8081", 1))
	converge(t, k, s)
	got := names(sequence(t, k, tcpTo("tcp/10.0.0.100:80"), 12), s.RealServers)
	if got != "ABCABCABCABC" || got != reference(t, s, 12) {
		t.Fatalf("rr: nftables %s, reference %s", got, reference(t, s, 12))
	}
	if v, _ := k.connect(tcpTo("tcp/10.0.0.100:80")); v.dnat != netip.MustParseAddrPort("10.0.1.1:8080") {
		t.Fatalf("dnat keeps each real server's own port: %v", v.dnat)
	}
}

func TestWRRInterleavesLikeIPVS(t *testing.T) {
	k := newSim()
	s := service("tcp/10.0.0.100:80", model.WRR, rs("10.0.1.1:80", 4), rs("10.0.1.2:80", 3), rs("10.0.1.3:80", 2))
	converge(t, k, s)
	got := names(sequence(t, k, tcpTo("tcp/10.0.0.100:80"), 18), s.RealServers)
	if want := reference(t, s, 18); got != want || got != "AABABCABCAABABCABC" {
		t.Fatalf("wrr 4:3:2: nftables %s, IPVS reference %s", got, want)
	}
}

func TestWRRProportionsOver1000(t *testing.T) {
	k := newSim()
	s := service("tcp/10.0.0.100:80", model.WRR, rs("10.0.1.1:80", 1), rs("10.0.1.2:80", 2), rs("10.0.1.3:80", 3))
	converge(t, k, s)
	count := map[byte]int{}
	for _, c := range []byte(names(sequence(t, k, tcpTo("tcp/10.0.0.100:80"), 1000), s.RealServers)) {
		count[c]++
	}
	// numgen inc over a 6-slot period: exact up to the last partial period.
	for c, w := range map[byte]int{'A': 1, 'B': 2, 'C': 3} {
		if want := 1000 * w / 6; count[c] < want-w || count[c] > want+w {
			t.Errorf("server %c: %d of 1000, want %d", c, count[c], want)
		}
	}
}

func TestRandomFollowsWeights(t *testing.T) {
	k := newSim()
	s := service("udp/10.0.0.100:53", model.Random, rs("10.0.1.1:53", 1), rs("10.0.1.2:53", 0), rs("10.0.1.3:53", 3))
	converge(t, k, s)
	p := packet{src: client, dst: s.Key.Addr, proto: unix.IPPROTO_UDP, dport: 53}
	count := map[byte]int{}
	for _, c := range []byte(names(sequence(t, k, p, 8000), s.RealServers)) {
		count[c]++
	}
	if count['B'] != 0 || count['-'] != 0 {
		t.Fatalf("random picked a quiesced server or nothing: %v", count)
	}
	if count['A'] < 1700 || count['A'] > 2300 { // expect 2000, sd ~39
		t.Errorf("random 1:3 gave %v", count)
	}
}

func TestSourceHashIsSticky(t *testing.T) {
	k := newSim()
	s := service("tcp/10.0.0.100:80", model.SH, rs("10.0.1.1:80", 1), rs("10.0.1.2:80", 1), rs("10.0.1.3:80", 1))
	converge(t, k, s)
	used := map[netip.AddrPort]bool{}
	for i := range 200 {
		p := tcpTo("tcp/10.0.0.100:80")
		p.src = netip.AddrFrom4([4]byte{198, 51, byte(i / 250), byte(i % 250)})
		seq := sequence(t, k, p, 5)
		for _, a := range seq {
			if a != seq[0] {
				t.Fatalf("sh moved client %v: %v", p.src, seq)
			}
		}
		used[seq[0]] = true
	}
	if len(used) != 3 {
		t.Errorf("200 clients used %d of 3 servers", len(used))
	}
}

func TestDestinationHashOnFWMarkService(t *testing.T) {
	k := newSim()
	s := service("fwmark/5/ipv4", model.DH, rs("10.0.1.1:0", 1), rs("10.0.1.2:0", 1))
	converge(t, k, s)
	used := map[netip.Addr]bool{}
	for i := range 50 {
		dst := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		var first netip.AddrPort
		for c := range 4 {
			p := packet{src: netip.AddrFrom4([4]byte{192, 0, 2, byte(c)}), dst: dst, proto: unix.IPPROTO_TCP, dport: uint16(1000 + c), mark: 5}
			v, err := k.connect(p)
			if err != nil || !v.natted {
				t.Fatalf("fwmark packet not balanced: %v %v", v, err)
			}
			if v.dnat.Port() != 0 {
				t.Fatalf("fwmark real server with port 0 must keep the destination port, got %v", v.dnat)
			}
			if c == 0 {
				first = v.dnat
			} else if v.dnat != first {
				t.Fatalf("dh: destination %v moved between sources", dst)
			}
		}
		used[first.Addr()] = true
	}
	if len(used) != 2 {
		t.Errorf("dh over 50 destinations used %d servers", len(used))
	}
	v, _ := k.connect(packet{src: client, dst: netip.MustParseAddr("203.0.113.1"), proto: unix.IPPROTO_TCP, dport: 1, mark: 6})
	if v.natted {
		t.Fatal("a packet with another mark was balanced")
	}
}

func TestDispatchMatchesOnlyTheService(t *testing.T) {
	k := newSim()
	converge(t, k, service("tcp/10.0.0.100:80", model.RR, rs("10.0.1.1:80", 1)))
	for _, p := range []packet{
		{src: client, dst: netip.MustParseAddr("10.0.0.100"), proto: unix.IPPROTO_TCP, dport: 81},
		{src: client, dst: netip.MustParseAddr("10.0.0.100"), proto: unix.IPPROTO_UDP, dport: 80},
		{src: client, dst: netip.MustParseAddr("10.0.0.101"), proto: unix.IPPROTO_TCP, dport: 80},
		{src: netip.MustParseAddr("2001:db8::5"), dst: netip.MustParseAddr("2001:db8::100"), proto: unix.IPPROTO_TCP, dport: 80},
	} {
		v, err := k.connect(p)
		if err != nil {
			t.Fatal(err)
		}
		if v.natted {
			t.Errorf("%+v was balanced", p)
		}
	}
}

func TestIPv6Service(t *testing.T) {
	k := newSim()
	s := service("tcp/[2001:db8::100]:443", model.RR, rs("[2001:db8:1::1]:8443", 1), rs("[2001:db8:1::2]:8443", 1))
	converge(t, k, s)
	p := packet{src: netip.MustParseAddr("2001:db8:2::9"), dst: s.Key.Addr, proto: unix.IPPROTO_TCP, dport: 443}
	if got := names(sequence(t, k, p, 4), s.RealServers); got != "ABAB" {
		t.Fatalf("ipv6 rr: %s", got)
	}
}

func TestQuiescedServersGetNothing(t *testing.T) {
	k := newSim()
	s := service("tcp/10.0.0.100:80", model.WRR, rs("10.0.1.1:80", 0), rs("10.0.1.2:80", 2))
	converge(t, k, s)
	if got := names(sequence(t, k, tcpTo("tcp/10.0.0.100:80"), 4), s.RealServers); got != "BBBB" {
		t.Fatalf("weight 0 got traffic: %s", got)
	}
	s.RealServers[1].Weight = 0
	converge(t, k, s)
	if got := names(sequence(t, k, tcpTo("tcp/10.0.0.100:80"), 2), s.RealServers); got != "--" {
		t.Fatalf("all quiesced: want no NAT, got %s", got)
	}
}

func TestPersistenceKeepsAClientAndExpires(t *testing.T) {
	k := newSim()
	s := service("tcp/10.0.0.100:80", model.RR, rs("10.0.1.1:80", 1), rs("10.0.1.2:80", 1), rs("10.0.1.3:80", 1))
	s.Persistence = model.Persistence{Timeout: 5 * time.Minute, PrefixLen: 24}
	converge(t, k, s)
	p := tcpTo("tcp/10.0.0.100:80")
	if got := names(sequence(t, k, p, 5), s.RealServers); got != "AAAAA" {
		t.Fatalf("persistent client rotated: %s", got)
	}
	// Same /24: same server. Another /24: rr continues.
	p2 := p
	p2.src = netip.MustParseAddr("192.0.2.77")
	if got := names(sequence(t, k, p2, 1), s.RealServers); got != "A" {
		t.Fatalf("client in the same /24 went to %s", got)
	}
	p3 := p
	p3.src = netip.MustParseAddr("192.0.3.1")
	if got := names(sequence(t, k, p3, 2), s.RealServers); got != "BB" {
		t.Fatalf("other network: %s", got)
	}
	// Each connection refreshes the entry; idle past the timeout, it expires.
	k.now = k.now.Add(4 * time.Minute)
	if got := names(sequence(t, k, p, 1), s.RealServers); got != "A" {
		t.Fatalf("refresh: %s", got)
	}
	k.now = k.now.Add(4 * time.Minute)
	if got := names(sequence(t, k, p, 1), s.RealServers); got != "A" {
		t.Fatalf("entry expired although refreshed 4 min ago: %s", got)
	}
	k.now = k.now.Add(6 * time.Minute)
	if got := names(sequence(t, k, p, 1), s.RealServers); got != "C" {
		t.Fatalf("after expiry the client is scheduled anew (rr next is C): %s", got)
	}
}

// A persistent client whose server is quiesced (health check failed) moves
// to a working server instead of sticking to the dead one.
func TestPersistenceMovesOffAQuiescedServer(t *testing.T) {
	k := newSim()
	s := service("tcp/10.0.0.100:80", model.RR, rs("10.0.1.1:80", 1), rs("10.0.1.2:80", 1))
	s.Persistence = model.Persistence{Timeout: time.Hour, PrefixLen: 32}
	converge(t, k, s)
	p := tcpTo("tcp/10.0.0.100:80")
	if got := names(sequence(t, k, p, 2), s.RealServers); got != "AA" {
		t.Fatal(got)
	}
	s.RealServers[0].Weight = 0
	converge(t, k, s)
	if got := names(sequence(t, k, p, 3), s.RealServers); got != "BBB" {
		t.Fatalf("client stayed on the quiesced server or lost persistence: %s", got)
	}
	s.RealServers[0].Weight = 1
	converge(t, k, s)
	if got := names(sequence(t, k, p, 2), s.RealServers); got != "BB" {
		t.Fatalf("persistence must survive the pool change: %s", got)
	}
}

// The expressions themselves, for each scheduler: what `nft list` would show.
func TestGeneratedExpressions(t *testing.T) {
	pickRule := func(s model.Service) (*nftables.Rule, []nftables.SetElement) {
		t.Helper()
		rules, elems, err := layout.ServiceRules(s)
		if err != nil {
			t.Fatal(err)
		}
		return rules[len(rules)-1], elems
	}
	three := []model.RealServer{rs("10.0.1.1:80", 1), rs("10.0.1.2:80", 2), rs("10.0.1.3:80", 3)}

	r, elems := pickRule(service("tcp/10.0.0.100:80", model.RR, three...))
	ng, ok := r.Exprs[0].(*expr.Numgen)
	if !ok || ng.Type != unix.NFT_NG_INCREMENTAL || ng.Modulus != 3 || ng.Register != unix.NFT_REG_1 {
		t.Fatalf("rr: want numgen inc mod 3 into reg 1, got %#v", r.Exprs[0])
	}
	lk, ok := r.Exprs[1].(*expr.Lookup)
	if !ok || lk.DestRegister != 0 || !lk.IsDestRegSet || lk.SetName != PickMapName(key("tcp/10.0.0.100:80")) {
		t.Fatalf("rr: want a verdict-map lookup on the service's pick map, got %#v", r.Exprs[1])
	}
	if m := layout.PickMap(key("tcp/10.0.0.100:80")); m.Anonymous || !m.IsMap || m.DataType.Name != "verdict" || m.KeyType.Name != "integer" || m.KeyByteOrder != binaryutil.NativeEndian {
		t.Fatalf("pick map: %+v", m)
	}
	for i, e := range elems {
		if !reflect.DeepEqual(e.Key, binaryutil.NativeEndian.PutUint32(uint32(i))) || e.VerdictData.Kind != expr.VerdictGoto ||
			e.VerdictData.Chain != RealServerChainName(key("tcp/10.0.0.100:80"), three[i].Addr) {
			t.Fatalf("rr element %d: %+v", i, e)
		}
	}

	r, elems = pickRule(service("tcp/10.0.0.100:80", model.WRR, three...))
	if ng := r.Exprs[0].(*expr.Numgen); ng.Type != unix.NFT_NG_INCREMENTAL || ng.Modulus != 6 {
		t.Fatalf("wrr: want numgen inc mod 6 (sum of weights), got %#v", ng)
	}
	var order []string
	for _, e := range elems {
		order = append(order, e.VerdictData.Chain[len(e.VerdictData.Chain)-6:])
	}
	if got := strings.Join(order, ","); got != "1_3_80,1_2_80,1_3_80,1_1_80,1_2_80,1_3_80" {
		t.Fatalf("wrr slots follow IPVS's order for 1:2:3 (CBCABC): %s", got)
	}

	r, _ = pickRule(service("tcp/10.0.0.100:80", model.Random, three...))
	if ng := r.Exprs[0].(*expr.Numgen); ng.Type != unix.NFT_NG_RANDOM || ng.Modulus != 6 {
		t.Fatalf("random: want numgen random mod 6, got %#v", ng)
	}

	for _, c := range []struct {
		s      model.Scheduler
		offset uint32
	}{{model.SH, 12}, {model.DH, 16}} {
		r, _ = pickRule(service("tcp/10.0.0.100:80", c.s, three...))
		if m, ok := r.Exprs[0].(*expr.Meta); !ok || m.Key != expr.MetaKeyNFPROTO {
			t.Fatalf("%s: rules reading addresses start with meta nfproto (for nft to print them): %#v", c.s, r.Exprs[0])
		}
		pl, ok := r.Exprs[2].(*expr.Payload)
		if !ok || pl.Base != expr.PayloadBaseNetworkHeader || pl.Offset != c.offset || pl.Len != 4 {
			t.Fatalf("%s: want ip %s address, got %#v", c.s, map[uint32]string{12: "source", 16: "destination"}[c.offset], r.Exprs[2])
		}
		h, ok := r.Exprs[3].(*expr.Hash)
		if !ok || h.Type != expr.HashTypeJenkins || h.Seed != HashSeed || h.Modulus != 6 || h.Length != 4 {
			t.Fatalf("%s: want jhash with the fixed seed mod 6, got %#v", c.s, r.Exprs[3])
		}
	}

	// IPv6 sh hashes the 16-byte source at offset 8.
	r, _ = pickRule(service("tcp/[2001:db8::1]:80", model.SH, rs("[2001:db8::2]:80", 1)))
	if pl := r.Exprs[2].(*expr.Payload); pl.Offset != 8 || pl.Len != 16 {
		t.Fatalf("ipv6 sh payload: %#v", pl)
	}

	// Real-server chain: counter, address and port registers, dnat.
	rules := layout.RealServerRules(service("tcp/10.0.0.100:80", model.RR, three...), three[1], 42)
	last := rules[len(rules)-1].Exprs
	nat, ok := last[len(last)-1].(*expr.NAT)
	if !ok || nat.Type != expr.NATTypeDestNAT || nat.Family != unix.NFPROTO_IPV4 || nat.RegAddrMin != unix.NFT_REG_1 || nat.RegProtoMin != unix.NFT_REG_2 {
		t.Fatalf("dnat: %#v", last[len(last)-1])
	}
	if c := last[2].(*expr.Counter); c.Packets != 42 {
		t.Fatalf("the counter carries the previous count: %#v", c)
	}
	if c, _ := Comment(rules[0]); c != "replicad rs addr=10.0.1.2:80 weight=2 fwd=nat" {
		t.Fatalf("comment %q", c)
	}

	// Persistence: a timed, dynamic set per real server, updated in its
	// chain and looked up in the service chain.
	ps := service("tcp/10.0.0.100:80", model.RR, three...)
	ps.Persistence = model.Persistence{Timeout: 300 * time.Second, PrefixLen: 24}
	set := layout.PersistSet(ps, three[0].Addr)
	if set.IsMap || !set.HasTimeout || !set.Dynamic || set.Timeout != 300*time.Second || set.KeyType.Name != "ipv4_addr" {
		t.Fatalf("persist set: %+v", set)
	}
	rules = layout.RealServerRules(ps, three[0], 0)
	bw, ok := rules[0].Exprs[3].(*expr.Bitwise)
	if !ok || !reflect.DeepEqual(bw.Mask, []byte{255, 255, 255, 0}) {
		t.Fatalf("persistence mask /24: %#v", rules[0].Exprs[3])
	}
	ds, ok := rules[0].Exprs[4].(*expr.Dynset)
	if !ok || ds.Operation != unix.NFT_DYNSET_OP_UPDATE || ds.SetName != set.Name || ds.SrcRegData != 0 {
		t.Fatalf("persistence update: %#v", rules[0].Exprs[4])
	}
	svcRules, _, _ := layout.ServiceRules(ps)
	hit := svcRules[1].Exprs
	if lk, ok := hit[len(hit)-2].(*expr.Lookup); !ok || lk.SetName != set.Name || lk.IsDestRegSet {
		t.Fatalf("persistence hit: set membership lookup, got %#v", hit[len(hit)-2])
	}
	if v, ok := hit[len(hit)-1].(*expr.Verdict); !ok || v.Kind != expr.VerdictGoto || v.Chain != RealServerChainName(ps.Key, three[0].Addr) {
		t.Fatalf("persistence hit: goto the server, got %#v", hit[len(hit)-1])
	}
}

func TestSlotsAreCapped(t *testing.T) {
	s := service("tcp/10.0.0.100:80", model.WRR, rs("10.0.1.1:80", 65535), rs("10.0.1.2:80", 65534), rs("10.0.1.3:80", 1))
	slots := Slots(s)
	if len(slots) > MaxSlots {
		t.Fatalf("%d slots > %d", len(slots), MaxSlots)
	}
	count := make([]int, 3)
	for _, i := range slots {
		count[i]++
	}
	if count[2] < 1 || count[0] < count[1] || count[1] < 2000 {
		t.Fatalf("scaled weights lost their proportions: %v", count)
	}
}

func TestBatchForUpdatesKeepsCountersAndUntouchedChains(t *testing.T) {
	k := newSim()
	a, b := key("tcp/10.0.0.100:80"), key("tcp/10.0.0.100:443")
	sa := service(a.String(), model.RR, rs("10.0.1.1:80", 1), rs("10.0.1.2:80", 1))
	sb := service(b.String(), model.RR, rs("10.0.1.1:443", 1))
	converge(t, k, sa, sb)
	sequence(t, k, tcpTo(a.String()), 4)
	sbRules := k.chains[ServiceChainName(b)]

	sa.RealServers[0].Weight = 3
	batch := converge(t, k, sa, sb)
	for _, act := range batch {
		if act.Kind == FlushChain && (act.Chain.Name == ChainDispatch || act.Chain.Name == ChainPrerouting) {
			t.Fatalf("a weight change rewrote %s", act)
		}
		if (act.Kind == FlushChain || act.Kind == AddChain) && strings.HasPrefix(act.Chain.Name, ServiceChainName(b)) {
			t.Fatalf("an unchanged service was touched: %s", act)
		}
		if act.Kind == FlushChain && act.Chain.Name == RealServerChainName(a, sa.RealServers[1].Addr) {
			t.Fatalf("an unchanged real server was rebuilt: %s", act)
		}
	}
	if !reflect.DeepEqual(k.chains[ServiceChainName(b)], sbRules) {
		t.Fatal("rules of the unchanged service were replaced")
	}
	d := Decode(k.snapshot())
	for _, o := range d.Services {
		if o.Key == a {
			for addr, st := range o.RealServerStats {
				if st.Connections != 2 {
					t.Errorf("%s: %d connections after rebuild, want 2", addr, st.Connections)
				}
			}
		}
	}
}

func TestBatchIsEmptyWhenNothingChanged(t *testing.T) {
	k := newSim()
	s := service("tcp/10.0.0.100:80", model.SH, rs("10.0.1.1:80", 1))
	s.Persistence = model.Persistence{Timeout: time.Minute, PrefixLen: 32}
	converge(t, k, s)
	d := Decode(k.snapshot())
	ops, _ := plan.Plan([]model.Service{s}, d.Services)
	batch, err := BuildBatch(layout, []model.Service{s}, ops, nil, TableIntact)
	if err != nil || len(batch) != 0 {
		t.Fatalf("re-apply of the same state wrote %d actions (%v)", len(batch), err)
	}
}

func TestBatchLifecycle(t *testing.T) {
	k := newSim()
	steps := [][]model.Service{
		{service("tcp/10.0.0.100:80", model.RR, rs("10.0.1.1:80", 1))},
		{service("tcp/10.0.0.100:80", model.WRR, rs("10.0.1.1:80", 1), rs("10.0.1.2:80", 2)), service("udp/10.0.0.100:53", model.SH, rs("10.0.1.1:53", 1))},
		{func() model.Service {
			s := service("tcp/10.0.0.100:80", model.WRR, rs("10.0.1.2:80", 2), rs("10.0.1.3:80", 1))
			s.Persistence = model.Persistence{Timeout: time.Minute, PrefixLen: 24}
			return s
		}()},
		{func() model.Service {
			s := service("tcp/10.0.0.100:80", model.WRR, rs("10.0.1.2:80", 2))
			s.Persistence = model.Persistence{Timeout: 2 * time.Minute, PrefixLen: 16}
			return s
		}()},
		{service("tcp/10.0.0.100:80", model.RR, rs("10.0.1.2:80", 2))},
		nil,
	}
	for i, desired := range steps {
		t.Run(fmt.Sprint(i), func(t *testing.T) { converge(t, k, desired...) })
	}
	for n := range k.chains {
		if strings.HasPrefix(n, "svc_") {
			t.Errorf("chain %s left behind", n)
		}
	}
	if len(k.sets) != 0 {
		t.Errorf("sets left behind: %v", k.sets)
	}
}

func TestDecodeDetectsDamageAndRebuildRepairs(t *testing.T) {
	s := service("tcp/10.0.0.100:80", model.RR, rs("10.0.1.1:80", 1), rs("10.0.1.2:80", 1))
	damage := map[string]func(k *simKernel){
		"rule deleted from a service chain": func(k *simKernel) {
			c := ServiceChainName(s.Key)
			k.chains[c] = k.chains[c][:1]
		},
		"foreign chain in our table": func(k *simKernel) { k.chains["mine"] = nil },
		"dispatch flushed":           func(k *simKernel) { k.chains[ChainDispatch] = nil },
		"base jump removed":          func(k *simKernel) { k.chains[ChainPrerouting] = nil },
		"real server comment lost": func(k *simKernel) {
			c := RealServerChainName(s.Key, s.RealServers[0].Addr)
			r := *k.chains[c][0]
			r.UserData = nil
			k.chains[c] = []*nftables.Rule{&r}
		},
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			k := newSim()
			converge(t, k, s)
			f(k)
			if d := Decode(k.snapshot()); d.Damaged == "" {
				t.Fatal("damage not detected")
			}
			batch := converge(t, k, s)
			if batch[0].Kind != DelTable {
				t.Fatalf("repair must start by deleting the table: %s", batch[0])
			}
			if got := names(sequence(t, k, tcpTo("tcp/10.0.0.100:80"), 2), s.RealServers); got != "AB" {
				t.Fatalf("after repair: %s", got)
			}
		})
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	k := newSim()
	a := service("tcp/10.0.0.100:80", model.WRR, rs("10.0.1.1:80", 3), rs("10.0.1.2:80", 0))
	a.Persistence = model.Persistence{Timeout: 90 * time.Second, PrefixLen: 28}
	b := service("fwmark/9/ipv6", model.DH, rs("[2001:db8::1]:0", 1))
	converge(t, k, a, b)
	d := Decode(k.snapshot())
	var got []model.Service
	for _, o := range d.Services {
		if !o.Owned {
			t.Fatal("services in our table are owned")
		}
		got = append(got, o.Service)
	}
	slices.SortFunc(got, func(x, y model.Service) int { return x.Key.Compare(y.Key) })
	want := []model.Service{a, b}
	slices.SortFunc(want, func(x, y model.Service) int { return x.Key.Compare(y.Key) })
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v\nwant %+v", got, want)
	}
}

func TestUnsupportedServiceIsRejected(t *testing.T) {
	s := service("tcp/10.0.0.100:80", model.WLC, rs("10.0.1.1:80", 1))
	_, err := BuildBatch(layout, []model.Service{s}, []plan.Op{{Kind: plan.CreateService, Service: s}}, nil, TableMissing)
	if !errors.Is(err, ErrUnsupported) || !errors.Is(err, model.ErrUnsupported) || !strings.Contains(err.Error(), "supported by: ipvs") {
		t.Fatalf("wlc on nftables: %v", err)
	}
}
