package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/nbd"
)

// stampedBlock is 4 KiB whose first 8 bytes name the write.
func stampedBlock(id uint64) []byte {
	b := bytes.Repeat([]byte{byte(id)}, 4096)
	binary.LittleEndian.PutUint64(b, id)
	return b
}

// TestFailoverLosesNoAcknowledgedWrite: two nodes with protocol C; the
// primary takes writes from several concurrent clients (and fio on the
// side) and is killed with SIGKILL. The secondary is promoted, and every
// block holds the last write the clients saw acknowledged, or a later one
// that was in flight. Then the old primary comes back as secondary and
// resyncs.
func TestFailoverLosesNoAcknowledgedWrite(t *testing.T) {
	fio := testenv.RequireTool(t, "fio", "fio")
	nodes := newCluster(t, clusterSpec{Nodes: 2, Volume: "r0", Size: "256MiB", Protocol: "C"})
	a, b := nodes[0], nodes[1]
	a.start()
	b.start()
	a.mustRepctl("create-md", "r0")
	b.mustRepctl("create-md", "r0")
	a.mustRepctl("up", "r0")
	b.mustRepctl("up", "r0")
	a.mustRepctl("primary", "--force", "r0")
	a.waitSync("r0")

	ctx := context.Background()
	addr := hostport(t, a.uri("r0"), "r0")
	const blocks = 4096 // the first 16 MiB: the clients' region
	type state struct {
		mu       sync.Mutex
		acked    map[int64]uint64   // block -> last acknowledged write
		inflight map[int64][]uint64 // block -> writes issued after it
	}
	st := &state{acked: map[int64]uint64{}, inflight: map[int64][]uint64{}}
	var nextID uint64
	var idMu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		cl, err := nbd.Dial(ctx, "tcp", addr, "r0", nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Each client owns blocks c, c+8, ...: no two clients write a
				// block concurrently, so "last acknowledged" is well defined.
				blk := int64(c) + 8*int64((i*7919)%(blocks/8))
				idMu.Lock()
				nextID++
				id := nextID
				idMu.Unlock()
				st.mu.Lock()
				st.inflight[blk] = append(st.inflight[blk], id)
				st.mu.Unlock()
				if err := cl.WriteAt(ctx, stampedBlock(id), blk*4096, false); err != nil {
					return // the primary died
				}
				st.mu.Lock()
				st.acked[blk] = id
				st.inflight[blk] = nil
				st.mu.Unlock()
			}
		}(c)
	}
	// fio hammers another region meanwhile.
	fioCmd := exec.Command(fio, "--name=load", "--ioengine=nbd", "--uri="+a.uri("r0"), "--rw=randwrite", "--bs=4k",
		"--iodepth=16", "--offset=64M", "--size=64M", "--time_based", "--runtime=60")
	fioCmd.Start()
	defer func() { fioCmd.Process.Kill(); fioCmd.Wait() }()
	time.Sleep(2 * time.Second)
	st.mu.Lock()
	ackedBefore := len(st.acked)
	st.mu.Unlock()
	a.stop(syscall.SIGKILL)
	close(stop)
	wg.Wait()
	if ackedBefore < 100 {
		t.Fatalf("only %d blocks were written before the kill: the load did not run", ackedBefore)
	}

	out, err := b.repctl("primary", "r0")
	if err != nil {
		t.Fatalf("promoting the secondary after the primary died: %v\n%s", err, out)
	}
	bc, err := nbd.Dial(ctx, "tcp", hostport(t, b.uri("r0"), "r0"), "r0", nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	st.mu.Lock()
	defer st.mu.Unlock()
	lost := 0
	for blk, id := range st.acked {
		if err := bc.ReadAt(ctx, buf, blk*4096); err != nil {
			t.Fatal(err)
		}
		got := binary.LittleEndian.Uint64(buf)
		ok := got == id
		for _, later := range st.inflight[blk] {
			ok = ok || got == later
		}
		if !ok {
			lost++
			if lost <= 5 {
				t.Errorf("block %d: acknowledged write #%d is lost after failover (the block holds #%d)", blk, id, got)
			}
		}
	}
	t.Logf("%d blocks with acknowledged writes checked on the new primary; %d lost", len(st.acked), lost)
	if lost > 0 {
		t.Fatalf("%d acknowledged writes lost", lost)
	}
	bc.Close()

	// The old primary returns, becomes a sync target and catches up.
	a.start()
	a.mustRepctl("up", "r0")
	b.waitSync("r0")
	if s := a.mustRepctl("status", "r0"); !strings.Contains(s, "Secondary") || !strings.Contains(s, "UpToDate") {
		t.Fatalf("old primary after resync:\n%s", s)
	}
}
