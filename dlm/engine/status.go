package engine

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/replicad/replicad/dlm/locktable"
	"github.com/replicad/replicad/dlm/wire"
)

// States reported by Status.
const (
	StateRunning     = "running"
	StateWaitQuorum  = "wait quorum"
	StateWaitFencing = "wait fencing"
	StateRecovering  = "recovering"
	StateLeft        = "left"
)

// Status is a lockspace's state on this node, as `dlm_tool ls` shows it.
type Status struct {
	Lockspace  string   `json:"lockspace"`
	Node       NodeID   `json:"node"`
	State      string   `json:"state"`
	Generation uint64   `json:"generation"`
	Members    []NodeID `json:"members"`
	NeedFence  []NodeID `json:"need_fence,omitempty"`
	Detail     string   `json:"detail,omitempty"`
	Locks      int      `json:"locks"`    // this node's locks
	Mastered   int      `json:"mastered"` // resources this node masters
	LVBLen     int      `json:"lvb_len"`
}

// Status returns the lockspace's state.
func (e *Engine) Status() Status {
	s := Status{
		Lockspace: e.cfg.Lockspace, Node: e.self, Generation: e.gen, Members: e.Members(),
		NeedFence: e.NeedFence(), Locks: len(e.locks), Mastered: len(e.owned), LVBLen: e.cfg.LVBLen,
	}
	switch {
	case e.left:
		s.State = StateLeft
	case e.running:
		s.State = StateRunning
	case !e.quorate:
		s.State = StateWaitQuorum
		s.Detail = "the cluster has no quorum"
	case len(s.NeedFence) > 0:
		s.State = StateWaitFencing
		s.Detail = fmt.Sprintf("waiting for fencing of nodes %v to be confirmed", s.NeedFence)
	default:
		s.State = StateRecovering
		s.Detail = e.recoveryDetail()
	}
	return s
}

func (e *Engine) recoveryDetail() string {
	r := e.rec
	if r == nil {
		return ""
	}
	if !e.helloComplete() {
		var quiet []NodeID
		for _, n := range slices.Sorted(maps.Keys(e.clusterAlive)) {
			if p := e.peers[n]; n != e.self && (p == nil || p.inc == 0 || !p.knowsMe) {
				quiet = append(quiet, n)
			}
		}
		return fmt.Sprintf("waiting to hear from nodes %v", quiet)
	}
	n := len(r.view)
	switch {
	case r.gen == 0 && coordinator(r.view) == e.self:
		var missing, differ []NodeID
		for _, v := range r.view {
			if v.Node == e.self {
				continue
			}
			st := e.statuses[v.Node]
			switch {
			case st == nil || !st.Has(wire.BitRecovering):
				missing = append(missing, v.Node)
			case !sameView(st.View, r.view) || !st.Has(wire.BitQuorate):
				differ = append(differ, v.Node)
			}
		}
		return fmt.Sprintf("coordinating: no status from %v, views or quorum differ on %v", missing, differ)
	case r.gen == 0:
		return fmt.Sprintf("waiting for coordinator %d to start", coordinator(r.view))
	case !r.mastersSent:
		return fmt.Sprintf("generation %d: directory %d/%d", r.gen, len(r.dirDone), n)
	case !r.locksSent:
		return fmt.Sprintf("generation %d: masters %d/%d", r.gen, len(r.mastersDone), n)
	default:
		return fmt.Sprintf("generation %d: locks %d/%d", r.gen, len(r.locksDone), n)
	}
}

// Dump is a lockspace's resources and locks as this node sees them: every
// resource it masters with all queues, and its own locks on resources
// mastered elsewhere (the `dlm_tool lockdump` view).
type Dump struct {
	Lockspace  string         `json:"lockspace"`
	Node       NodeID         `json:"node"`
	Generation uint64         `json:"generation"`
	State      string         `json:"state"`
	Resources  []ResourceDump `json:"resources"`
}

// ResourceDump is one resource.
type ResourceDump struct {
	Name        string     `json:"name"`     // printable form (Go-quoted if not plain text)
	NameHex     string     `json:"name_hex"` // exact bytes
	Master      NodeID     `json:"master"`   // 0 if unknown
	MasterCopy  bool       `json:"master_copy"`
	LVB         string     `json:"lvb,omitempty"` // hex
	LVBSeq      uint32     `json:"lvb_seq,omitempty"`
	ValNotValid bool       `json:"valnotvalid,omitempty"`
	Granted     []LockDump `json:"granted"`
	Converting  []LockDump `json:"converting"`
	Waiting     []LockDump `json:"waiting"`
}

// LockDump is one lock.
type LockDump struct {
	ID     string `json:"id"` // the owner's lock id, hex
	Node   NodeID `json:"node"`
	Mode   string `json:"mode"` // granted mode, "--" if none
	RqMode string `json:"rqmode,omitempty"`
	Flags  string `json:"flags,omitempty"`
	Status string `json:"status"`
}

func printable(name string) string {
	if utf8.ValidString(name) && strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) || r == '"' }) < 0 {
		return name
	}
	q := fmt.Sprintf("%q", name)
	return q[1 : len(q)-1]
}

func modeStr(m locktable.Mode) string {
	if m == locktable.IV {
		return "--"
	}
	return m.String()
}

// Dump returns the lockspace's resources and locks.
func (e *Engine) Dump() Dump {
	d := Dump{Lockspace: e.cfg.Lockspace, Node: e.self, Generation: e.gen, State: e.Status().State}
	names := map[string]bool{}
	for n := range e.owned {
		names[n] = true
	}
	for _, n := range e.table.Names() {
		names[n] = true
	}
	for n := range e.rsbs {
		names[n] = true
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		rd := ResourceDump{Name: printable(name), NameHex: hex.EncodeToString([]byte(name)),
			Granted: []LockDump{}, Converting: []LockDump{}, Waiting: []LockDump{}}
		if st, ok := e.table.Snapshot(name); ok || e.owned[name] != nil {
			rd.Master, rd.MasterCopy = e.self, true
			if st.LVB != nil {
				rd.LVB, rd.LVBSeq = hex.EncodeToString(st.LVB), st.LVBSeq
			}
			rd.ValNotValid = st.ValNotValid
			conv := func(ls []locktable.Lock) []LockDump {
				out := []LockDump{}
				for _, lk := range ls {
					ld := LockDump{ID: fmt.Sprintf("%08x", lk.ID.ID), Node: lk.ID.Node, Mode: modeStr(lk.GrMode), Status: lk.Status.String()}
					if lk.RqMode != locktable.IV {
						ld.RqMode = lk.RqMode.String()
					}
					if lk.Flags != 0 {
						ld.Flags = lk.Flags.String()
					}
					out = append(out, ld)
				}
				return out
			}
			rd.Granted, rd.Converting, rd.Waiting = conv(st.Granted), conv(st.Converting), conv(st.Waiting)
		} else if rs := e.rsbs[name]; rs != nil {
			rd.Master = rs.master
			for _, id := range slices.Sorted(maps.Keys(rs.locks)) {
				lk := e.locks[id]
				if lk == nil {
					continue
				}
				ld := LockDump{ID: fmt.Sprintf("%08x", lk.id), Node: e.self, Mode: modeStr(lk.gr), Status: lk.status.String()}
				if lk.rq != locktable.IV {
					ld.RqMode = lk.rq.String()
				}
				if lk.flags != 0 {
					ld.Flags = lk.flags.String()
				}
				switch lk.status {
				case locktable.StatusGranted:
					rd.Granted = append(rd.Granted, ld)
				case locktable.StatusConverting:
					rd.Converting = append(rd.Converting, ld)
				default:
					rd.Waiting = append(rd.Waiting, ld)
				}
			}
		}
		d.Resources = append(d.Resources, rd)
	}
	return d
}

// Text renders the dump as `dlm_tool lockdump` does.
func (d *Dump) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lockspace %q node %d generation %d %s\n", d.Lockspace, d.Node, d.Generation, d.State)
	for _, r := range d.Resources {
		n, _ := hex.DecodeString(r.NameHex)
		fmt.Fprintf(&b, "\nResource len %2d  \"%s\"\n", len(n), r.Name)
		switch {
		case r.MasterCopy:
			b.WriteString("Master Copy\n")
		case r.Master == 0:
			b.WriteString("Local Copy, Master is unknown\n")
		default:
			fmt.Fprintf(&b, "Local Copy, Master is node %d\n", r.Master)
		}
		if r.LVB != "" {
			lvb, _ := hex.DecodeString(r.LVB)
			fmt.Fprintf(&b, "LVB seq %d%s:", r.LVBSeq, map[bool]string{true: " VALNOTVALID"}[r.ValNotValid])
			for i, c := range lvb {
				if i%16 == 0 {
					b.WriteString("\n    ")
				}
				fmt.Fprintf(&b, " %02x", c)
			}
			b.WriteString("\n")
		}
		q := func(title string, ls []LockDump) {
			b.WriteString(title + "\n")
			for _, l := range ls {
				rq := ""
				if l.RqMode != "" {
					rq = "(" + l.RqMode + ")"
				}
				fmt.Fprintf(&b, "%s %s %-4s", l.ID, l.Mode, rq)
				if l.Node != d.Node {
					fmt.Fprintf(&b, " Remote: %3d %s", l.Node, l.ID)
				}
				if l.Flags != "" {
					fmt.Fprintf(&b, " flags %s", l.Flags)
				}
				b.WriteString("\n")
			}
		}
		q("Granted Queue", r.Granted)
		q("Conversion Queue", r.Converting)
		q("Waiting Queue", r.Waiting)
	}
	return b.String()
}

// Holder is a lock as its holder's process copy sees it, for tests and
// simulators that check cluster-wide invariants.
type Holder struct {
	LkID      uint32
	Name      string
	GrMode    locktable.Mode
	RqMode    locktable.Mode
	Status    locktable.Status
	Flags     locktable.Flags
	OpPending bool // a request or conversion awaits its answer
	Cancel    bool // a cancel is pending
	Unlock    bool // an unlock is pending
	Master    NodeID
}

// Holders returns this node's locks, sorted by id.
func (e *Engine) Holders() []Holder {
	var out []Holder
	for _, id := range slices.Sorted(maps.Keys(e.locks)) {
		lk := e.locks[id]
		h := Holder{LkID: id, Name: lk.name, GrMode: lk.gr, RqMode: lk.rq, Status: lk.status, Flags: lk.flags,
			OpPending: lk.op != opNone, Cancel: lk.cancelling, Unlock: lk.unlocking}
		if rs := e.rsbs[lk.name]; rs != nil {
			h.Master = rs.master
		}
		out = append(out, h)
	}
	return out
}

// MasterCopies calls f for every master copy this node holds.
func (e *Engine) MasterCopies(f func(name string, lk *locktable.Lock)) { e.table.Each(f) }

// Masters reports whether this node masters name.
func (e *Engine) Masters(name string) bool { return e.owned[name] != nil }

// View returns the lockspace view with engine incarnations.
func (e *Engine) View() []wire.Member { return slices.Clone(e.view) }

// PeerString describes what this engine knows of a peer, for diagnostics.
func (e *Engine) PeerString(n NodeID) string {
	p := e.peers[n]
	if p == nil {
		return fmt.Sprintf("node %d: unknown", n)
	}
	return fmt.Sprintf("node %d: inc %d node-inc %d joined %v gone %v knows-me %v alive %v unacked %d recv-next %d hello-seq %d",
		n, p.inc, p.nodeInc, p.joined, p.gone, p.knowsMe, e.clusterAlive[n], len(p.unacked), p.recvNext, p.helloSeq)
}

// ResourceString describes what this engine knows of a resource, for
// diagnostics.
func (e *Engine) ResourceString(name string) string {
	var master NodeID
	lookup := uint64(0)
	if rs := e.rsbs[name]; rs != nil {
		master, lookup = rs.master, rs.lookupID
	}
	d, inDir := e.dir[name]
	return fmt.Sprintf("%q: dir-node %d dir-entry %d(%v) owned %v has-locks %v rsb-master %d lookup %d",
		name, dirNode(name, e.view), d, inDir, e.owned[name] != nil, e.table.Has(name), master, lookup)
}
