package integration

import (
	"bytes"
	"context"
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
// side, whose writes must reach the secondary) and is killed with SIGKILL.
// The secondary is promoted, and every block holds the last write the
// clients saw acknowledged, or a later one that was in flight. Then the old primary comes back as secondary and
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
	var fioOut bytes.Buffer
	fioCmd.Stdout, fioCmd.Stderr = &fioOut, &fioOut
	if err := fioCmd.Start(); err != nil {
		t.Fatalf("start fio: %v", err)
	}
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
	// fio's region on the new primary: its writes (random bytes) are there
	// unless fio never ran.
	fioBlocks := 0
	buf := make([]byte, 1<<20)
	for c, off := b.dial("r0"), int64(64<<20); off < 128<<20; off += int64(len(buf)) {
		if err := c.ReadAt(context.Background(), buf, off); err != nil {
			t.Fatalf("read fio's region on the new primary: %v", err)
		}
		for i := 0; i < len(buf); i += blockSize {
			if !bytes.Equal(buf[i:i+blockSize], make([]byte, blockSize)) {
				fioBlocks++
			}
		}
	}
	if fioBlocks == 0 {
		fioCmd.Process.Kill()
		fioCmd.Wait()
		t.Fatalf("fio's region [64 MiB, 128 MiB) is all zeroes on the new primary: fio wrote nothing\n%s", fioOut.String())
	}
	t.Logf("%d blocks of fio's region written", fioBlocks)

	// The old primary returns, becomes a sync target and catches up.
	a.start()
	a.mustRepctl("up", "r0")
	b.waitSync("r0")
	if s := a.mustRepctl("status", "r0"); !strings.Contains(s, "Secondary") || !strings.Contains(s, "UpToDate") {
		t.Fatalf("old primary after resync:\n%s", s)
	}
}
