package repltest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/replicad/replicad/replication"
	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/meta"
	"github.com/replicad/replicad/replication/uuid"
	"github.com/replicad/replicad/replication/wire"
)

// Block is the unit simulated clients write. Each write fills a block and
// stamps its first 8 bytes with the write's number, so a read tells which
// write a block holds.
const Block = 4096

// Options configure a Cluster.
type Options struct {
	Nodes    int
	Protocol byte
	// Blocks is how many blocks the clients write. They are spread over
	// the volume, one per activity-log extent in turn (see Cluster.off), so
	// the activity log evicts extents and a crash marks only part of the
	// volume.
	Blocks   int64
	Policies uuid.Policies
	// Checksums makes resyncs send digests first (csums).
	Checksums bool
	// DualPrimary makes every node primary (allow-two-primaries) and
	// writes come from all of them; links do not break and nodes do not
	// crash (that makes a split brain by design).
	DualPrimary bool
	// UnsafeResync lets resync reads run while an application write to the
	// same range is between queueing and its local write: one of the races
	// the range lock exists for (the other: overlapping application writes,
	// which the simulated client never issues concurrently). Used to show
	// that the checks catch it.
	UnsafeResync bool
	// Quorum and OnNoQuorum are the volume's quorum settings.
	Quorum     engine.QuorumPolicy
	OnNoQuorum engine.OnNoQuorum
	// Partitions (with Quorum) splits the nodes now and then, mostly
	// cutting the primary off from all others (and promoting a node of
	// the majority meanwhile), sometimes another node, and with four
	// nodes sometimes two against two, until a heal.
	Partitions bool
	// ExternalMeta puts every node's metadata on a device of its own (a
	// second crash-simulating disk, cut with the data disk), as
	// `meta: PATH` does.
	ExternalMeta bool
	// Fencing is the volume's fencing policy. The fence-peer handler is
	// simulated as Pacemaker's crm-fence-peer works with a cluster
	// manager that sees every node: run on a node without quorum (when
	// the volume uses quorum) it cannot reach the manager and fails
	// (exit 1); a peer that is primary is powered off under
	// resource-and-stonith (exit 7) and reported (exit 6) under
	// resource-only; any other peer may not be promoted until it has
	// resynced (exit 4, outdated), and the simulation then never
	// promotes it.
	Fencing engine.FencePolicy
}

// Cluster is a simulated set of nodes replicating one volume.
type Cluster struct {
	opts  Options
	r     *rand.Rand
	Nodes []*Node
	links map[[2]uint32]*link
	log   []string
	ctx   context.Context
	// noWait is cancelled: calls that would block return at once.
	noWait context.Context
	step   int
	// extents is the volume size in activity-log extents.
	extents int64

	nextWrite uint64
	// history holds, per block, the client's writes in issue order.
	history map[int64][]clientWrite
	// candidates are the nodes a failover may promote: Established and
	// UpToDate with the primary when it crashed, not crashed since. The
	// value is the step since which the node was Established with it.
	candidates map[uint32]int
	// candidatesOf is the crashed primary the candidates were in sync
	// with.
	candidatesOf uint32
	// cutOff: secondaries whose link to a primary broke while they were
	// in its in-sync set (quorum failover candidates), with the primary
	// and the step they were in sync since.
	cutOff map[uint32]cut
	// split and split2 (one bit per node each) place the nodes in up to
	// four groups of a partition: nodes whose bits differ in either are
	// cut off from each other until a heal (both 0: none).
	split, split2 uint32
	// establishedAt is, per (node, peer), the step since which the node's
	// replication with the peer is Established.
	establishedAt map[[2]uint32]int
	// promotedAt is, per node, the step it last became primary.
	promotedAt map[uint32]int
	// fenced: nodes the fence-peer handler forbade promoting (Fencing),
	// until they are Established and UpToDate with a primary again.
	fenced map[uint32]bool
	// stonith: primaries a fence-peer handler powers off, once the
	// current step's engine outputs are performed (powerOff).
	stonith []uint32

	// Stats counts what happened, so tests can show they exercised it.
	Stats Stats
}

// Stats are counts of simulated events.
type Stats struct {
	Writes, Acked, Crashes, LinkBreaks, Failovers, CheckedFailovers, Switchovers, ResyncRanges, Verifies, RacyReads, Conflicts int
	// InterleavedResync counts resync reads made by random steps (not by
	// Drain), i.e. interleaved with client writes.
	InterleavedResync int
	// NoQuorum counts writes refused or failed for lack of quorum;
	// StepDowns primaries without quorum that met one with it.
	NoQuorum, StepDowns int
	// QuorumFailovers counts promotions in a majority while the primary
	// was cut off; QuorumRefused those refused.
	QuorumFailovers, QuorumRefused int
	// Partitions counts partitions; EvenSplits those of two nodes
	// against two, ThreeWay those into three groups.
	Partitions, EvenSplits, ThreeWay int
	// OneWay counts links that stopped carrying one direction.
	OneWay int
	// Fenced counts fence-peer handler runs, Stonith the primaries they
	// powered off; ConsistentAttach nodes that came up Consistent
	// (fencing on, a peer not known outdated).
	Fenced, Stonith, ConsistentAttach int
}

func (s *Stats) Add(o Stats) {
	s.Writes += o.Writes
	s.Acked += o.Acked
	s.Crashes += o.Crashes
	s.LinkBreaks += o.LinkBreaks
	s.Failovers += o.Failovers
	s.CheckedFailovers += o.CheckedFailovers
	s.Switchovers += o.Switchovers
	s.ResyncRanges += o.ResyncRanges
	s.Verifies += o.Verifies
	s.RacyReads += o.RacyReads
	s.InterleavedResync += o.InterleavedResync
	s.NoQuorum += o.NoQuorum
	s.StepDowns += o.StepDowns
	s.QuorumFailovers += o.QuorumFailovers
	s.QuorumRefused += o.QuorumRefused
	s.Partitions += o.Partitions
	s.EvenSplits += o.EvenSplits
	s.ThreeWay += o.ThreeWay
	s.OneWay += o.OneWay
	s.Fenced += o.Fenced
	s.Stonith += o.Stonith
	s.ConsistentAttach += o.ConsistentAttach
}

type clientWrite struct {
	id      uint64
	by      uint32 // the node that issued it
	acked   bool
	ackedAt int // step
	// with: the nodes Established with the node that acknowledged it,
	// at that step (bit = node id).
	with uint32
}

// Node is one simulated node.
type Node struct {
	ID      uint32
	Up      bool
	Disk    *disk.Crash
	Meta    *disk.Crash // with Options.ExternalMeta; else the metadata is on Disk
	Vol     *replication.Volume
	Eng     *engine.Engine
	c       *Cluster
	pending []localOp
	applies map[uint32][]engine.Apply
	waiters map[uint64]waiter
	// mods are written writes' activity-log holds, until retired.
	mods  map[uint64]*replication.Modification
	reads []resyncRead // resync reads waiting for the range lock
}

type localOp struct {
	id    uint64
	flush bool
	block int64
	data  []byte
	fua   bool
	// mod is the write's activity-log hold, taken before it was sent.
	mod              *replication.Modification
	zero, deallocate bool
}

type waiter struct {
	flush bool
	block int64
	index int
}

type resyncRead struct {
	peer   uint32
	link   uint64
	off, n int64
}

type link struct {
	up    bool
	queue []wire.Message
	// stalled: this direction carries nothing until the link breaks
	// (a one-way failure, see stallRandomLink).
	stalled bool
	// drainConnects counts Drain's reconnections: two nodes that refuse
	// each other until something else changes ("retrying") would
	// otherwise reconnect forever.
	drainConnects int
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// New builds a cluster of fresh nodes. Node 0 is promoted with force (as an
// operator initialises a new volume); the others are connected and synced.
func New(r *rand.Rand, opts Options) (*Cluster, error) {
	c := &Cluster{opts: opts, r: r, links: make(map[[2]uint32]*link), history: make(map[int64][]clientWrite),
		ctx: context.Background(), noWait: cancelled(), candidates: map[uint32]int{}, cutOff: map[uint32]cut{}, establishedAt: map[[2]uint32]int{}, promotedAt: map[uint32]int{}, fenced: map[uint32]bool{}}
	geo := meta.DefaultGeometry()
	geo.ALExtents = 67
	geo.ALExtentSize = ALExtent
	geo.MaxPeers = max(1, opts.Nodes-1)
	c.extents = min(opts.Blocks, 128)
	var devSize, metaSize int64
	var err error
	if opts.ExternalMeta {
		devSize = c.extents * ALExtent
		var l meta.Layout
		l, err = meta.ExternalLayout(devSize, geo)
		metaSize = l.MetaSize
	} else {
		devSize, err = deviceFor(c.extents*ALExtent, geo)
	}
	if err != nil {
		return nil, err
	}
	for i := 0; i < opts.Nodes; i++ {
		n := &Node{ID: uint32(i), c: c, Disk: disk.NewCrash(devSize)}
		if opts.ExternalMeta {
			n.Meta = disk.NewCrash(metaSize)
		}
		if _, err := replication.CreateMetadata(n.devices(), replication.CreateOptions{NodeID: n.ID, Geometry: geo}); err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
		for j := 0; j < opts.Nodes; j++ {
			if j != i {
				c.links[[2]uint32{uint32(i), uint32(j)}] = &link{}
			}
		}
	}
	for _, n := range c.Nodes {
		if err := n.start(); err != nil {
			return nil, err
		}
	}
	n0 := c.Nodes[0]
	o, err := n0.Eng.Promote(true)
	if err != nil {
		return nil, err
	}
	n0.exec(o)
	c.connectAll()
	c.Drain()
	if opts.DualPrimary {
		for _, n := range c.Nodes[1:] {
			o, err := n.Eng.Promote(false)
			if err != nil {
				return nil, fmt.Errorf("node %d: second primary: %w", n.ID, err)
			}
			n.exec(o)
		}
		c.Drain()
	}
	return c, nil
}

// deviceFor finds the device size whose internal metadata leaves exactly
// data bytes.
func deviceFor(data int64, geo meta.Geometry) (int64, error) {
	for dev := data + 2*meta.BlockSize; dev < data*2+(16<<20); dev += meta.BlockSize {
		l, err := meta.InternalLayout(dev, geo)
		if err == nil && l.DataSize == data {
			return dev, nil
		}
		if err == nil && l.DataSize > data {
			break
		}
	}
	return 0, fmt.Errorf("no device size gives %d data bytes", data)
}

func (c *Cluster) logf(format string, args ...any) {
	c.log = append(c.log, fmt.Sprintf("%6d ", c.step)+fmt.Sprintf(format, args...))
}

// Log returns the last n log lines, for a failure message.
func (c *Cluster) Log(n int) string {
	var b bytes.Buffer
	for _, l := range c.log[max(0, len(c.log)-n):] {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// devices are the node's disks: data, and metadata when it has its own.
func (n *Node) devices() replication.Devices {
	d := replication.Devices{Data: n.Disk}
	if n.Meta != nil {
		d.Meta = n.Meta
	}
	return d
}

func (n *Node) start() error {
	vol, rep, err := replication.Attach("r0", n.devices(), replication.AttachOptions{Logger: discard})
	if err != nil {
		return fmt.Errorf("node %d attach: %w", n.ID, err)
	}
	var peers []uint32
	for i := 0; i < n.c.opts.Nodes; i++ {
		if uint32(i) != n.ID {
			peers = append(peers, uint32(i))
		}
	}
	eng, err := engine.New(engine.Config{
		NodeID: n.ID, Volume: "r0", Peers: peers, Protocol: n.c.opts.Protocol, Checksums: n.c.opts.Checksums,
		AllowTwoPrimaries: n.c.opts.DualPrimary, Quorum: n.c.opts.Quorum, OnNoQuorum: n.c.opts.OnNoQuorum,
		Policies: n.c.opts.Policies, NewUUID: n.c.r.Uint64, Fencing: n.c.opts.Fencing,
	}, vol)
	if err != nil {
		return fmt.Errorf("node %d engine: %w", n.ID, err)
	}
	n.Vol, n.Eng, n.Up = vol, eng, true
	if eng.Disk() == engine.Consistent {
		n.c.Stats.ConsistentAttach++
	}
	n.pending, n.reads = nil, nil
	n.applies = make(map[uint32][]engine.Apply)
	n.waiters = make(map[uint64]waiter)
	n.mods = make(map[uint64]*replication.Modification)
	n.c.logf("node %d: up (crashed primary %v, al replayed %d, oos %v)", n.ID, rep.CrashedPrimary, rep.ALReplayed, func() (o []int64) {
		for _, p := range eng.Status().Peers {
			o = append(o, p.OutOfSyncBytes)
		}
		return
	}())
	n.c.logf("node %d: %s", n.ID, n.generation())
	return nil
}

// exec performs an engine Output.
func (n *Node) exec(o engine.Output) {
	c := n.c
	for _, s := range o.Sends {
		l := c.links[[2]uint32{n.ID, s.Peer}]
		if !l.up {
			continue
		}
		l.queue = append(l.queue, s.Msg)
		if w, ok := s.Msg.(*wire.Write); ok {
			// Written to the socket: what protocol A waits for.
			n.exec(n.Eng.Sent(s.Peer, w.Seq))
		}
	}
	for _, done := range o.Completions {
		w, ok := n.waiters[done.ID]
		if !ok {
			continue
		}
		delete(n.waiters, done.ID)
		switch {
		case done.Err != nil:
			if errors.Is(done.Err, engine.ErrNoQuorum) {
				c.Stats.NoQuorum++
			}
			c.logf("node %d: op %d failed: %v", n.ID, done.ID, done.Err)
		case !w.flush:
			h := &c.history[w.block][w.index]
			h.acked, h.ackedAt = true, c.step
			for k := range c.establishedAt {
				if k[1] == n.ID {
					h.with |= 1 << k[0]
				}
			}
			c.Stats.Acked++
			c.logf("node %d: write #%d to block %d acknowledged", n.ID, c.history[w.block][w.index].id, w.block)
		}
	}
	for _, id := range o.Retired {
		if m, ok := n.mods[id]; ok {
			delete(n.mods, id)
			m.End()
		}
	}
	for _, a := range o.Applies {
		n.applies[a.Peer] = append(n.applies[a.Peer], a)
	}
	for _, h := range o.Handlers {
		if h.Name == "fence-peer" {
			code := c.fencePeer(n, h.Peer)
			c.logf("node %d: fence-peer for node %d (%s) exits %d", n.ID, h.Peer, h.Detail, code)
			n.exec(n.Eng.FenceResult(h.Peer, code))
		}
	}
	for _, d := range o.Disconnects {
		c.logf("node %d: disconnects %d: %s", n.ID, d.Peer, d.Reason)
		c.breakLink(n.ID, d.Peer)
	}
	for _, ev := range o.Events {
		if !ev.PeerSet && ev.What == "role" && ev.New == "Primary" {
			c.promotedAt[n.ID] = c.step
		}
		if !ev.PeerSet && ev.What == "role" && strings.Contains(ev.Reason, "lost quorum") {
			c.Stats.StepDowns++
		}
		if ev.PeerSet && ev.What == "replication" {
			key := [2]uint32{n.ID, ev.Peer}
			verify := func(s string) bool { return s == "VerifyS" || s == "VerifyT" }
			switch {
			case verify(ev.New) || ev.New == "Established" && verify(ev.Old):
				// an online verify runs in sync (engine: established):
				// in sync since before it
			case ev.New == "Established":
				c.establishedAt[key] = c.step
				if p := c.Nodes[ev.Peer]; c.fenced[n.ID] && p.Up && p.Eng.Role() == engine.Primary && n.Eng.Disk() == engine.UpToDate {
					// crm-unfence-peer: in sync with a primary again
					delete(c.fenced, n.ID)
					c.logf("node %d: unfenced (in sync with primary %d)", n.ID, p.ID)
				}
			default:
				delete(c.establishedAt, key)
			}
		}
		who := fmt.Sprintf("node %d", n.ID)
		if ev.PeerSet {
			who += fmt.Sprintf(" (peer %d)", ev.Peer)
		}
		c.logf("%s: %s %s -> %s %s", who, ev.What, ev.Old, ev.New, ev.Reason)
		if ev.What == "role" || ev.What == "disk" || ev.What == "replication" && ev.Old == "Off" {
			c.logf("node %d: %s", n.ID, n.generation())
		}
	}
}

// generation summarises a node's generation state for the log.
func (n *Node) generation() string {
	g := n.Vol.Generation()
	s := fmt.Sprintf("current %x history %x", g.Current&0xffff, func() (h []uint64) {
		for _, u := range g.History[:min(4, len(g.History))] {
			h = append(h, u&0xffff)
		}
		return
	}())
	if g.SyncToward != 0 {
		s += fmt.Sprintf(" towards %x", g.SyncToward&0xffff)
	}
	switch {
	case g.Pending && g.Uncommitted:
		s += " (tentative, uncommitted, announced)"
	case g.Pending:
		s += " (tentative, announced)"
	case g.Uncommitted:
		s += " (tentative, uncommitted)"
	case g.Tentative:
		s += " (tentative)"
	}
	for _, sl := range g.Slots {
		if sl.Node >= 0 {
			slot, _ := n.Vol.SlotFor(uint32(sl.Node))
			s += fmt.Sprintf(" [node %d: bitmap %x, %d blocks]", sl.Node, sl.Bitmap&0xffff, n.Vol.OutOfSyncBytes(slot)/Block)
		}
	}
	return s
}

// primary returns a primary (a random one with two primaries).
type cut struct {
	primary uint32
	since   int
}

func (c *Cluster) primary() *Node {
	var ps []*Node
	for _, n := range c.Nodes {
		if n.Up && n.Eng.Role() == engine.Primary {
			ps = append(ps, n)
		}
	}
	if len(ps) == 0 {
		return nil
	}
	if c.opts.DualPrimary || c.opts.Quorum != engine.QuorumOff {
		// With quorum a primary cut off in a minority may still be up
		// while the majority promoted another: clients try both.
		return ps[c.r.IntN(len(ps))]
	}
	return ps[0]
}

func (c *Cluster) breakLink(a, b uint32) {
	la, lb := c.links[[2]uint32{a, b}], c.links[[2]uint32{b, a}]
	if !la.up && !lb.up {
		return
	}
	for _, pair := range [][2]uint32{{a, b}, {b, a}} {
		p, m := c.Nodes[pair[0]], c.Nodes[pair[1]]
		if p.Up && m.Up && p.Eng.Role() == engine.Primary && m.Eng.Disk() == engine.UpToDate {
			for _, st := range m.Eng.Status().Peers {
				if st.Node == p.ID && st.Conn == engine.Connected && st.Repl == engine.Established && st.InItsSyncSet {
					c.cutOff[m.ID] = cut{primary: p.ID, since: c.establishedAt[[2]uint32{m.ID, p.ID}]}
				}
			}
		}
	}
	la.up, lb.up = false, false
	la.queue, lb.queue = nil, nil
	la.stalled, lb.stalled = false, false
	for _, pair := range [][2]uint32{{a, b}, {b, a}} {
		n := c.Nodes[pair[0]]
		if !n.Up {
			continue
		}
		delete(n.applies, pair[1])
		n.exec(n.Eng.Disconnected(pair[1], "link broken"))
	}
}

// connectAll brings up every link whose ends are up and want it.
func (c *Cluster) connectAll() {
	for i := range c.Nodes {
		for j := i + 1; j < len(c.Nodes); j++ {
			c.connect(uint32(i), uint32(j))
		}
	}
}

// apart reports nodes a and b on different sides of the partition.
func (c *Cluster) apart(a, b uint32) bool {
	return c.split>>a&1 != c.split>>b&1 || c.split2>>a&1 != c.split2>>b&1
}

func (c *Cluster) connect(a, b uint32) bool {
	na, nb := c.Nodes[a], c.Nodes[b]
	la, lb := c.links[[2]uint32{a, b}], c.links[[2]uint32{b, a}]
	if !na.Up || !nb.Up || la.up || !na.Eng.WantsConnection(b) || !nb.Eng.WantsConnection(a) || c.apart(a, b) {
		return false
	}
	la.up, lb.up = true, true
	c.logf("link %d-%d up", a, b)
	for _, pair := range [][2]uint32{{a, b}, {b, a}} {
		n := c.Nodes[pair[0]]
		o, err := n.Eng.Connected(pair[1])
		if err != nil {
			panic(err)
		}
		n.exec(o)
	}
	return true
}

// ALExtent is the simulated volumes' activity-log extent size (the
// smallest the metadata allows).
const ALExtent = 64 << 10

// off is the byte offset of client block b: consecutive blocks are in
// consecutive extents.
func (c *Cluster) off(b int64) int64 {
	return b%c.extents*ALExtent + b/c.extents*Block
}

// block is the client block at byte offset off (for the log).
func (c *Cluster) block(off int64) int64 {
	return off%ALExtent/Block*c.extents + off/ALExtent
}

// stamped returns a block's content for write id.
func stamped(id uint64) []byte {
	b := bytes.Repeat([]byte{byte(id)}, Block)
	binary.LittleEndian.PutUint64(b, id)
	return b
}

// readBlock returns the write id a node's block holds (0: never written).
func (n *Node) readBlock(b int64) uint64 {
	buf := make([]byte, Block)
	if err := n.Vol.ReadAt(n.c.ctx, buf, n.c.off(b)); err != nil {
		panic(err)
	}
	return binary.LittleEndian.Uint64(buf)
}

func sortedKeys[V any](m map[uint32]V) []uint32 {
	keys := make([]uint32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

// members lists the nodes of a set (one bit each).
func members(set uint32) []uint32 {
	var ids []uint32
	for id := uint32(0); set>>id != 0; id++ {
		if set>>id&1 != 0 {
			ids = append(ids, id)
		}
	}
	return ids
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// fencePeer is the simulated fence-peer handler n runs for peer (see
// Options.Fencing).
func (c *Cluster) fencePeer(n *Node, peer uint32) int {
	c.Stats.Fenced++
	if c.opts.Quorum != engine.QuorumOff && !n.Eng.Quorate() {
		return 1
	}
	q := c.Nodes[peer]
	if q.Up && q.Eng.Role() == engine.Primary {
		if c.opts.Fencing != engine.ResourceAndStonith {
			return engine.FencePeerIsPrimary
		}
		c.logf("node %d: fence-peer powers node %d off", n.ID, peer)
		c.Stats.Stonith++
		c.stonith = append(c.stonith, peer)
		c.fenced[peer] = true
		return engine.FencePeerFenced
	}
	c.fenced[peer] = true
	return engine.FencePeerOutdated
}

// promote promotes n without force, running the fence-peer handler for
// the peers the engine wants fenced first, as the replicator does.
func (c *Cluster) promote(n *Node) (engine.Output, error) {
	o, err := n.Eng.Promote(false)
	var nf *engine.NeedsFencingError
	if !errors.As(err, &nf) {
		return o, err
	}
	for _, p := range nf.Peers {
		code := c.fencePeer(n, p)
		c.logf("node %d: fence-peer for node %d before promotion exits %d", n.ID, p, code)
		n.exec(n.Eng.FenceResult(p, code))
	}
	c.powerOff()
	return n.Eng.Promote(false)
}

// powerOff cuts the power of the nodes fence-peer handlers powered off. A
// handler runs inside a node's exec, which may itself run inside the
// exec of the node to power off: the cut waits until those are done.
func (c *Cluster) powerOff() {
	for len(c.stonith) > 0 {
		id := c.stonith[0]
		c.stonith = c.stonith[1:]
		if n := c.Nodes[id]; n.Up {
			c.crash(n)
		}
	}
}

// promotable: the cluster manager may promote n (it is not fenced).
func (c *Cluster) promotable(n *Node) bool { return !c.fenced[n.ID] }
