package engine_test

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/replicad/replicad/replication"
	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/wire"
)

// dataPair is a pair whose nodes hold data (an in-memory copy each of the
// replicated bytes): applies write it and digests read it, the resync
// source reads from it. It records the resync data each node sends.
type dataPair struct {
	*pair
	proto byte
	tune  func(*engine.Config)
	r     *rand.Rand
	data  [2][]byte
	disks [2]*disk.Crash
	vols  [2]*replication.Volume
	// resyncData holds the range of every ResyncData sent, per sender,
	// in order.
	resyncData [2][]engine.Span
	// tap, if set, sees every message delivered to node to; onApply
	// every local operation node i performs.
	tap     func(to int, m wire.Message)
	onApply func(i int, a engine.Apply)
}

// newDataPair returns two unconnected engines under proto (tuned by
// tune) holding the same random data.
func newDataPair(t testing.TB, proto byte, tune func(*engine.Config)) *dataPair {
	t.Helper()
	dp := &dataPair{pair: &pair{t: t}, proto: proto, tune: tune, r: rand.New(rand.NewPCG(51, 52))}
	for i := range dp.eng {
		dp.disks[i] = newDisk(t, uint32(i), 1)
		dp.eng[i], dp.vols[i] = attachEngine(t, dp.disks[i], uint32(i), []uint32{uint32(1 - i)}, proto, dp.r, tune)
	}
	seed := make([]byte, dp.vols[0].Size())
	rand.NewChaCha8([32]byte{53}).Read(seed)
	dp.data = [2][]byte{seed, slices.Clone(seed)}
	return dp
}

// exec performs node i's output: sends are queued (a Write reported Sent
// at once), applies done on node i's data at once.
func (dp *dataPair) exec(i int, o engine.Output) {
	for _, s := range o.Sends {
		m := s.Msg
		switch m := m.(type) {
		case *wire.ResyncData:
			dp.resyncData[i] = append(dp.resyncData[i], engine.Span{Off: int64(m.Offset), N: int64(len(m.Data))})
		case *wire.Write:
			defer func() { dp.exec(i, dp.eng[i].Sent(s.Peer, m.Seq)) }()
		}
		dp.queue[1-i] = append(dp.queue[1-i], m)
	}
	dp.retired[i] = append(dp.retired[i], o.Retired...)
	for _, c := range o.Completions {
		dp.completed[i] = append(dp.completed[i], c.ID)
	}
	for _, a := range o.Applies {
		d := dp.data[i]
		n := int64(len(a.Data))
		if a.Kind == engine.ApplyZero || a.Kind == engine.ApplyDigest {
			n = a.Length
		}
		if dp.onApply != nil {
			dp.onApply(i, a)
		}
		if a.Offset < 0 || n < 0 || a.Offset > int64(len(d))-n {
			dp.t.Fatalf("node %d: apply %v outside the volume: %d bytes at %d (volume %d)", i, a.Kind, n, a.Offset, len(d))
		}
		switch a.Kind {
		case engine.ApplyWrite, engine.ApplyResync:
			copy(d[a.Offset:], a.Data)
		case engine.ApplyZero:
			clear(d[a.Offset : a.Offset+a.Length])
		case engine.ApplyDigest:
			a.Data = slices.Clone(d[a.Offset : a.Offset+a.Length])
		}
		dp.exec(i, dp.eng[i].Applied(a, nil))
	}
}

// deliver hands node i the messages queued for it, and nothing else.
func (dp *dataPair) deliver(i int) {
	q := dp.queue[i]
	dp.queue[i] = nil
	for _, m := range q {
		if dp.tap != nil {
			dp.tap(i, m)
		}
		o, err := dp.eng[i].Receive(uint32(1-i), m)
		if err != nil {
			dp.t.Fatalf("node %d: %v", i, err)
		}
		dp.exec(i, o)
	}
}

// drain delivers queued messages until none are left anywhere.
func (dp *dataPair) drain() {
	for len(dp.queue[0])+len(dp.queue[1]) > 0 {
		dp.deliver(0)
		dp.deliver(1)
	}
}

func (dp *dataPair) connect() {
	for i := range dp.eng {
		dp.exec(i, must(dp.eng[i].Connected(uint32(1-i))))
	}
	dp.drain()
}

// cut disconnects the nodes and drops what was in flight between them.
func (dp *dataPair) cut(reason string) {
	dp.queue = [2][]wire.Message{}
	for i := range dp.eng {
		dp.exec(i, dp.eng[i].Disconnected(uint32(1-i), reason))
	}
	dp.queue = [2][]wire.Message{}
}

// restart closes node i's volume cleanly and attaches it again with a
// new engine (secondary, unconnected), keeping its data.
func (dp *dataPair) restart(i int) {
	dp.t.Helper()
	if err := dp.vols[i].Close(); err != nil {
		dp.t.Fatal(err)
	}
	dp.disks[i] = dp.disks[i].CrashClone(nil) // closed cleanly: all of it is stable
	dp.eng[i], dp.vols[i] = attachEngine(dp.t, dp.disks[i], uint32(i), []uint32{uint32(1 - i)}, dp.proto, dp.r, dp.tune)
}

// write writes p at off on primary node i, locally and to the peer if it
// replicates.
func (dp *dataPair) write(i int, off int64, p []byte) {
	dp.t.Helper()
	id, o, err := dp.eng[i].StartWrite(off, p, false)
	if err != nil {
		dp.t.Fatal(err)
	}
	dp.exec(i, o)
	copy(dp.data[i][off:], p)
	dp.exec(i, dp.eng[i].LocalWriteDone(id, nil))
}

// resyncStep hands out node i's next resync range (at most max bytes)
// and queues what it read for it: false when the pass found nothing.
func (dp *dataPair) resyncStep(i int, max int64) bool {
	peer := uint32(1 - i)
	off, n, link, ok := dp.eng[i].NextResync(peer, max)
	if !ok {
		return false
	}
	dp.exec(i, dp.eng[i].ResyncRead(peer, link, off, slices.Clone(dp.data[i][off:off+n]), nil))
	return true
}

// resync runs node i's resync sender, max bytes per range, delivering
// everything after each range, until node i is no longer the sync source.
func (dp *dataPair) resync(i int, max int64) {
	dp.t.Helper()
	peer := uint32(1 - i)
	for steps := 0; ; steps++ {
		if steps > 1<<12 {
			dp.t.Fatal("resync does not end")
		}
		if _, active := dp.eng[i].ResyncInflight(peer); !active {
			dp.drain()
			return
		}
		if !dp.resyncStep(i, max) {
			dp.exec(i, dp.eng[i].ResyncIdle(peer))
		}
		dp.drain()
	}
}

// resyncBytes is the ResyncData bytes node i sent since its counter was
// last reset.
func (dp *dataPair) resyncBytes(i int) int64 {
	var n int64
	for _, s := range dp.resyncData[i] {
		n += s.N
	}
	return n
}

// inSync fails the test unless both nodes are Established with each
// other, UpToDate, with empty bitmaps and equal data.
func (dp *dataPair) inSync() {
	dp.t.Helper()
	for i, e := range dp.eng {
		p := e.Status().Peers[0]
		if p.Repl != engine.Established || e.Disk() != engine.UpToDate || p.OutOfSyncBytes != 0 {
			dp.t.Fatalf("node %d: %v, disk %v, %d bytes out of sync; want Established, UpToDate, none", i, p.Repl, e.Disk(), p.OutOfSyncBytes)
		}
	}
	if !bytes.Equal(dp.data[0], dp.data[1]) {
		for off := 0; off < len(dp.data[0]); off += 4096 {
			end := min(off+4096, len(dp.data[0]))
			if !bytes.Equal(dp.data[0][off:end], dp.data[1][off:end]) {
				dp.t.Fatalf("the nodes say they are in sync, but their data differ (first at block %d)", off/4096)
			}
		}
	}
}

// syncedDataPair is a dataPair with node 0 primary and node 1 resynced
// from it; the resync data records are reset.
func syncedDataPair(t testing.TB, proto byte, tune func(*engine.Config)) *dataPair {
	t.Helper()
	dp := newDataPair(t, proto, tune)
	dp.exec(0, must(dp.eng[0].Promote(true)))
	dp.connect() // node 1, just created, is the full-sync target
	dp.resync(0, 1<<20)
	dp.inSync()
	dp.resyncData = [2][]engine.Span{}
	return dp
}
