package integration

import (
	"bytes"
	"encoding/binary"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/testenv"
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

	addr := hostport(t, a.uri("r0"), "r0")
	const blocks = 4096 // the first 16 MiB: the clients' region
	stop := make(chan struct{})
	st, wg := writeUntilDead(t, "tcp", addr, 8, blocks, stop)
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
	checked, lost := st.lostWrites(t, b)
	t.Logf("%d blocks with acknowledged writes checked on the new primary; %d lost", checked, lost)
	if lost > 0 {
		t.Fatalf("%d acknowledged writes lost", lost)
	}

	// The old primary returns, becomes a sync target and catches up.
	a.start()
	a.mustRepctl("up", "r0")
	b.waitSync("r0")
	if s := a.mustRepctl("status", "r0"); !strings.Contains(s, "Secondary") || !strings.Contains(s, "UpToDate") {
		t.Fatalf("old primary after resync:\n%s", s)
	}
}
