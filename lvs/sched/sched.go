package sched

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"

	"github.com/replicad/replicad/lvs/model"
)

// Server is a real server as a scheduler sees it.
type Server struct {
	Name     string
	Weight   int
	Active   int // established connections
	Inactive int // other connections (TIME_WAIT, FIN, ...)
}

// overhead is the kernel's ip_vs_dest_conn_overhead.
func (s Server) overhead() int { return s.Active*256 + s.Inactive }

// Conn is what a scheduler may look at in a new connection.
type Conn struct {
	Src netip.Addr
	Dst netip.Addr
}

// Scheduler picks a server for a new connection. Pick returns an index into
// servers, or -1 when no server may take it. Implementations keep the state
// the kernel keeps (rr position, wrr current weight, lblc tables) between
// calls; callers pass the same server list (possibly with new weights and
// counts) every time.
type Scheduler interface {
	Pick(servers []Server, c Conn) int
}

// New returns the reference implementation of a scheduler. seed only
// matters for model.Random.
func New(name model.Scheduler, seed uint64) (Scheduler, error) {
	switch name {
	case model.RR:
		return &rr{last: -1}, nil
	case model.WRR:
		return &wrr{i: -1}, nil
	case model.LC:
		return lc{}, nil
	case model.WLC:
		return wlc{}, nil
	case model.SED:
		return sed{}, nil
	case model.NQ:
		return nq{}, nil
	case model.SH:
		return hashTable{bySource: true, weighted: true}, nil
	case model.DH:
		return hashTable{}, nil
	case model.LBLC:
		return &lblc{table: map[netip.Addr]string{}}, nil
	case model.LBLCR:
		return &lblcr{table: map[netip.Addr][]string{}}, nil
	case model.MH:
		return &maglev{}, nil
	case model.Random:
		return &random{r: rand.New(rand.NewPCG(seed, seed^0x5eed))}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownScheduler, name)
}

// rr: ip_vs_rr.c — the next server after the last one picked, skipping
// weight 0.
type rr struct{ last int }

func (s *rr) Pick(servers []Server, _ Conn) int {
	n := len(servers)
	for k := 1; k <= n; k++ {
		i := (s.last + k) % n
		if s.last < 0 {
			i = k - 1
		}
		if servers[i].Weight > 0 {
			s.last = i
			return i
		}
	}
	return -1
}

// wrr: ip_vs_wrr.c — step through the servers, lowering the current weight
// by gcd after each full pass and resetting it to the maximum at zero; pick
// the first server whose weight reaches the current weight.
type wrr struct {
	i  int
	cw int
}

func (s *wrr) Pick(servers []Server, _ Conn) int {
	g, maxW := gcdMax(servers)
	if maxW == 0 {
		return -1
	}
	n := len(servers)
	for {
		s.i = (s.i + 1) % n
		if s.i == 0 {
			s.cw -= g
			if s.cw <= 0 {
				s.cw = maxW
			}
		}
		if servers[s.i].Weight >= s.cw {
			return s.i
		}
	}
}

func gcdMax(servers []Server) (g, maxW int) {
	for _, s := range servers {
		if s.Weight > 0 {
			g = gcd(g, s.Weight)
			maxW = max(maxW, s.Weight)
		}
	}
	return g, maxW
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// WRRSequence returns one period of IPVS's wrr order for the given weights
// (indices into weights). The period is sum(weights)/gcd(weights); numgen inc
// modulo the period over this sequence reproduces wrr exactly. It returns
// nil when every weight is 0.
func WRRSequence(weights []uint32) []int {
	servers := make([]Server, len(weights))
	total := 0
	for i, w := range weights {
		servers[i] = Server{Weight: int(w)}
		total += int(w)
	}
	g, _ := gcdMax(servers)
	if g == 0 {
		return nil
	}
	s := &wrr{i: -1}
	seq := make([]int, total/g)
	for k := range seq {
		seq[k] = s.Pick(servers, Conn{})
	}
	return seq
}

// leastBy picks the server minimising overhead/weight, comparing by cross
// multiplication as the kernel does (no division). cost returns the
// numerator; weightless servers are skipped.
func leastBy(servers []Server, cost func(Server) int, weighted bool) int {
	best := -1
	for i, s := range servers {
		if s.Weight <= 0 {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		b := servers[best]
		if weighted {
			// cost(s)/w(s) < cost(b)/w(b)  <=>  cost(s)*w(b) < cost(b)*w(s)
			if cost(s)*b.Weight < cost(b)*s.Weight {
				best = i
			}
		} else if cost(s) < cost(b) {
			best = i
		}
	}
	return best
}

// lc: ip_vs_lc.c — least overhead, weights ignored (but weight 0 skipped).
type lc struct{}

func (lc) Pick(servers []Server, _ Conn) int { return leastBy(servers, Server.overhead, false) }

// wlc: ip_vs_wlc.c — least overhead/weight.
type wlc struct{}

func (wlc) Pick(servers []Server, _ Conn) int { return leastBy(servers, Server.overhead, true) }

// sed: ip_vs_sed.c — least (active+1)/weight.
type sed struct{}

func sedCost(s Server) int { return s.Active + 1 }

func (sed) Pick(servers []Server, _ Conn) int { return leastBy(servers, sedCost, true) }

// nq: ip_vs_nq.c — the first idle server if any, otherwise sed.
type nq struct{}

func (nq) Pick(servers []Server, _ Conn) int {
	for i, s := range servers {
		if s.Weight > 0 && s.Active == 0 {
			return i
		}
	}
	return leastBy(servers, sedCost, true)
}

// tableSize is the kernel's IP_VS_SH_TAB_SIZE / IP_VS_DH_TAB_SIZE (256).
const tableSize = 256

// hashTable: ip_vs_sh.c and ip_vs_dh.c — a 256-bucket table filled with the
// servers in order (sh gives a server as many consecutive buckets as its
// weight; dh one each); a connection goes to the bucket of its source (sh)
// or destination (dh) address. A bucket whose server has weight 0 yields no
// server (no sh-fallback).
type hashTable struct {
	bySource bool
	weighted bool
}

func (h hashTable) Pick(servers []Server, c Conn) int {
	table := h.build(servers)
	if table == nil {
		return -1
	}
	a := c.Dst
	if h.bySource {
		a = c.Src
	}
	i := table[hashAddr(a)%tableSize]
	if servers[i].Weight <= 0 {
		return -1
	}
	return i
}

func (h hashTable) build(servers []Server) []int {
	if len(servers) == 0 {
		return nil
	}
	table := make([]int, tableSize)
	i, used := 0, 0
	for b := range table {
		table[b] = i
		used++
		w := 1
		if h.weighted {
			w = max(servers[i].Weight, 1)
		}
		if used >= w {
			i = (i + 1) % len(servers)
			used = 0
		}
	}
	return table
}

func hashAddr(a netip.Addr) uint32 {
	f := fnv.New32a()
	b := a.As16()
	f.Write(b[:])
	return f.Sum32()
}

func hashString(s string, salt byte) uint32 {
	f := fnv.New32a()
	f.Write([]byte{salt})
	f.Write([]byte(s))
	return f.Sum32()
}

// lblcOverloaded is ip_vs_lblc.c's is_overloaded: busier than its weight
// while some other server is under half of its own.
func lblcOverloaded(d Server, servers []Server) bool {
	if d.Active <= d.Weight {
		return false
	}
	for _, s := range servers {
		if s.Active*2 < s.Weight {
			return true
		}
	}
	return false
}

func indexOf(servers []Server, name string) int {
	for i, s := range servers {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// lblc: ip_vs_lblc.c — remember a server per destination address; keep
// using it unless it is gone, drained or overloaded, then re-pick with wlc.
type lblc struct{ table map[netip.Addr]string }

func (s *lblc) Pick(servers []Server, c Conn) int {
	if name, ok := s.table[c.Dst]; ok {
		if i := indexOf(servers, name); i >= 0 && servers[i].Weight > 0 && !lblcOverloaded(servers[i], servers) {
			return i
		}
	}
	i := wlc{}.Pick(servers, c)
	if i >= 0 {
		s.table[c.Dst] = servers[i].Name
	}
	return i
}

// lblcr: ip_vs_lblcr.c — remember a server *set* per destination; use its
// least loaded (wlc) member; when that member is overloaded, add the
// least loaded server overall to the set and use it.
type lblcr struct{ table map[netip.Addr][]string }

func (s *lblcr) Pick(servers []Server, c Conn) int {
	var members []Server
	var idx []int
	for _, name := range s.table[c.Dst] {
		if i := indexOf(servers, name); i >= 0 {
			members = append(members, servers[i])
			idx = append(idx, i)
		}
	}
	if m := (wlc{}).Pick(members, c); m >= 0 {
		i := idx[m]
		if servers[i].Active <= servers[i].Weight || !lblcOverloaded(servers[i], servers) {
			return i
		}
	}
	i := wlc{}.Pick(servers, c)
	if i >= 0 {
		name := servers[i].Name
		set := s.table[c.Dst]
		if indexOf(members, name) < 0 {
			set = append(set, name)
		}
		s.table[c.Dst] = set
	}
	return i
}

// MaglevTableSize is the kernel's default mh lookup table size (prime 4093,
// CONFIG_IP_VS_MH_TAB_INDEX=12).
const MaglevTableSize = 4093

// maglev: ip_vs_mh.c — each server walks its own permutation of the table
// (offset and skip from two hashes of its name) and claims the next free
// slot, weight/gcd slots per round; a connection goes to the slot of its
// source address. Removing a server only moves the slots it owned.
type maglev struct{}

func (maglev) Pick(servers []Server, c Conn) int {
	table := MaglevTable(servers)
	if table == nil {
		return -1
	}
	return table[hashAddr(c.Src)%MaglevTableSize]
}

// MaglevTable builds the lookup table: slot -> index into servers.
func MaglevTable(servers []Server) []int {
	g, _ := gcdMax(servers)
	if g == 0 {
		return nil
	}
	type perm struct{ offset, skip, next uint32 }
	perms := make([]perm, len(servers))
	for i, s := range servers {
		perms[i] = perm{
			offset: hashString(s.Name, 1) % MaglevTableSize,
			skip:   hashString(s.Name, 2)%(MaglevTableSize-1) + 1,
		}
	}
	table := make([]int, MaglevTableSize)
	for i := range table {
		table[i] = -1
	}
	filled := 0
	for filled < MaglevTableSize {
		for i, s := range servers {
			if s.Weight <= 0 {
				continue
			}
			for turn := 0; turn < s.Weight/g && filled < MaglevTableSize; turn++ {
				p := &perms[i]
				for {
					slot := (p.offset + p.next*p.skip) % MaglevTableSize
					p.next++
					if table[slot] < 0 {
						table[slot] = i
						filled++
						break
					}
				}
			}
		}
	}
	return table
}

// random: nftables `numgen random mod sum(weights)` over weight ranges —
// each connection independently picks server i with probability w_i/sum.
type random struct{ r *rand.Rand }

func (s *random) Pick(servers []Server, _ Conn) int {
	total := 0
	for _, sv := range servers {
		total += max(sv.Weight, 0)
	}
	if total == 0 {
		return -1
	}
	n := s.r.IntN(total)
	for i, sv := range servers {
		if sv.Weight <= 0 {
			continue
		}
		if n < sv.Weight {
			return i
		}
		n -= sv.Weight
	}
	panic("sched: random pick fell off the weight ranges")
}
