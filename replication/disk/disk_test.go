package disk

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replicad/replicad/internal/testenv"
)

const testSize = 1 << 20

// implementations returns a fresh device of each kind, all testSize bytes.
func implementations(t *testing.T) map[string]Device {
	t.Helper()
	f, err := Open(filepath.Join(t.TempDir(), "dev.img"), OpenOptions{CreateSize: testSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return map[string]Device{
		"File":   f,
		"Mem":    NewMem(testSize),
		"Faulty": NewFaulty(NewMem(testSize)),
		"Crash":  NewCrash(testSize),
	}
}

// TestContract checks the rules every Device must keep: reads see the latest
// write, unwritten space reads as zeroes, Zero reads back as zeroes with or
// without deallocation, and out-of-range calls fail with ErrOutOfRange.
func TestContract(t *testing.T) {
	r := testenv.Rand(t)
	for name, d := range implementations(t) {
		t.Run(name, func(t *testing.T) {
			if d.Size() != testSize {
				t.Fatalf("Size = %d, want %d", d.Size(), testSize)
			}
			model := make([]byte, testSize)
			buf := make([]byte, 64<<10)
			for i := 0; i < 300; i++ {
				off := r.Int64N(testSize)
				n := r.Int64N(min(int64(len(buf)), testSize-off)) + 1
				if off+n > testSize {
					n = testSize - off
				}
				switch r.IntN(5) {
				case 0, 1:
					p := buf[:n]
					for j := range p {
						p[j] = byte(r.UintN(256))
					}
					if err := WriteFull(d, p, off); err != nil {
						t.Fatal(err)
					}
					copy(model[off:], p)
				case 2:
					if err := ZeroRange(d, off, n, r.IntN(2) == 0); err != nil {
						t.Fatal(err)
					}
					clear(model[off : off+n])
				case 3:
					p := buf[:n]
					for j := range p {
						p[j] = byte(r.UintN(256))
					}
					if err := WriteSync(d, p, off); err != nil {
						t.Fatal(err)
					}
					copy(model[off:], p)
				case 4:
					if err := d.Sync(); err != nil {
						t.Fatal(err)
					}
				}
				got := buf[:n]
				if err := ReadFull(d, got, off); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, model[off:off+n]) {
					t.Fatalf("step %d: read [%d,+%d) differs from the model", i, off, n)
				}
			}
			all := make([]byte, testSize)
			if err := ReadFull(d, all, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(all, model) {
				t.Fatal("whole-device read differs from the model")
			}
			for _, c := range []struct{ off, n int64 }{{-1, 1}, {testSize, 1}, {testSize - 1, 2}, {1 << 62, 1 << 62}} {
				if _, err := d.ReadAt(make([]byte, c.n%4096+1), c.off); !errors.Is(err, ErrOutOfRange) {
					t.Errorf("ReadAt(off=%d): err %v, want ErrOutOfRange", c.off, err)
				}
				if _, err := d.WriteAt(make([]byte, c.n%4096+1), c.off); !errors.Is(err, ErrOutOfRange) {
					t.Errorf("WriteAt(off=%d): err %v, want ErrOutOfRange", c.off, err)
				}
				if err := ZeroRange(d, c.off, c.n, false); !errors.Is(err, ErrOutOfRange) {
					t.Errorf("ZeroRange(off=%d, n=%d): err %v, want ErrOutOfRange", c.off, c.n, err)
				}
			}
		})
	}
}

// TestCrashKeepsOnlySynced: after a power cut with no cached sector kept,
// exactly the data written before the last Sync (or with WriteAtSync) is there.
func TestCrashKeepsOnlySynced(t *testing.T) {
	c := NewCrash(8192)
	a := bytes.Repeat([]byte{0xaa}, 4096)
	b := bytes.Repeat([]byte{0xbb}, 4096)
	f := bytes.Repeat([]byte{0xff}, 512)
	WriteFull(c, a, 0)
	c.Sync()
	WriteFull(c, b, 0)         // cached over synced data
	WriteFull(c, b, 4096)      // cached over nothing
	c.WriteAtSync(f, 4096+512) // FUA: durable on its own
	got := make([]byte, 8192)
	ReadFull(c.CrashClone(nil), got, 0)
	want := make([]byte, 8192)
	copy(want, a)
	copy(want[4096+512:], f)
	if !bytes.Equal(got, want) {
		t.Fatal("crash clone without kept sectors is not the synced state plus the FUA write")
	}
	ReadFull(c.CrashClone(func(int64) bool { return true }), got, 0)
	copy(want, b)
	copy(want[4096:], b)
	copy(want[4096+512:], f)
	if !bytes.Equal(got, want) {
		t.Fatal("crash clone keeping every sector is not the latest state")
	}
}

// TestCrashTearsWrites: a multi-sector write can survive in part.
func TestCrashTearsWrites(t *testing.T) {
	c := NewCrash(4096)
	WriteFull(c, bytes.Repeat([]byte{1}, 4096), 0)
	clone := c.CrashClone(func(sec int64) bool { return sec%2 == 0 })
	got := make([]byte, 4096)
	ReadFull(clone, got, 0)
	for sec := 0; sec < 8; sec++ {
		want := byte(0)
		if sec%2 == 0 {
			want = 1
		}
		if got[sec*SectorSize] != want || got[sec*SectorSize+SectorSize-1] != want {
			t.Fatalf("sector %d: got %d, want %d", sec, got[sec*SectorSize], want)
		}
	}
}

func TestFaultyRules(t *testing.T) {
	m := NewMem(8192)
	f := NewFaulty(m)
	boom := errors.New("boom")
	f.Inject(Rule{Ops: OpWrite, Off: 4096, Len: 4096, After: 1, Times: 1, Err: boom})
	p := []byte{7}
	if _, err := f.WriteAt(p, 0); err != nil {
		t.Fatalf("write outside the rule's range failed: %v", err)
	}
	if _, err := f.WriteAt(p, 5000); err != nil {
		t.Fatalf("first matching write should pass (After=1): %v", err)
	}
	if _, err := f.WriteAt([]byte{9}, 5001); !errors.Is(err, boom) {
		t.Fatalf("second matching write: err %v, want boom", err)
	}
	got := make([]byte, 1)
	m.ReadAt(got, 5001)
	if got[0] != 0 {
		t.Fatal("a failed write changed the inner device")
	}
	if _, err := f.WriteAt(p, 5002); err != nil {
		t.Fatalf("rule with Times=1 fired twice: %v", err)
	}
	f.Inject(Rule{Ops: OpSync})
	if err := f.Sync(); !errors.Is(err, ErrInjected) {
		t.Fatalf("Sync: err %v, want ErrInjected", err)
	}
	if _, err := f.WriteAtSync(p, 0); !errors.Is(err, ErrInjected) {
		t.Fatalf("WriteAtSync counts as a sync: err %v, want ErrInjected", err)
	}
	f.Clear()
	if err := f.Sync(); err != nil {
		t.Fatalf("after Clear: %v", err)
	}
}

func TestOpenRefusesSecondWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.img")
	a, err := Open(path, OpenOptions{CreateSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := Open(path, OpenOptions{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open of a file in use: err %v, want 'in use'", err)
	}
}

func TestOpenRejectsOtherFileTypes(t *testing.T) {
	if _, err := Open(t.TempDir(), OpenOptions{}); err == nil {
		t.Fatal("opening a directory succeeded")
	}
	if _, err := Open("/dev/null", OpenOptions{}); err == nil {
		t.Fatal("opening a character device succeeded")
	}
}

// TestBlockDevice runs the contract on a real loop device (root only).
func TestBlockDevice(t *testing.T) {
	testenv.RequireRoot(t)
	losetup := testenv.RequireTool(t, "losetup", "util-linux")
	img := filepath.Join(t.TempDir(), "loop.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, testSize); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(losetup, "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(losetup, "-d", dev).Run() })
	d, err := Open(dev, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !d.IsBlockDevice() || d.Size() != testSize {
		t.Fatalf("block=%v size=%d, want a %d-byte block device", d.IsBlockDevice(), d.Size(), testSize)
	}
	p := bytes.Repeat([]byte{0x5a}, 8192)
	if err := WriteSync(d, p, 4096); err != nil {
		t.Fatal(err)
	}
	if err := ZeroRange(d, 4096+512, 1000, false); err != nil {
		t.Fatal(err)
	}
	if err := ZeroRange(d, 8192, 4096, true); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8192)
	if err := ReadFull(d, got, 4096); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{0x5a}, 8192)
	clear(want[512:1512])
	clear(want[4096:])
	if !bytes.Equal(got, want) {
		t.Fatal("block device contents after writes and zeroing differ from expectation")
	}
	if _, err := Open(dev, OpenOptions{}); err == nil {
		t.Fatal("second exclusive open of a block device succeeded")
	}
}

// TestReadAtNoWait checks the NoWaitReader rule: a read it reports done
// returns the latest write, exactly as ReadAt would, and a range outside
// the device fails with ErrOutOfRange.
func TestReadAtNoWait(t *testing.T) {
	for name, d := range implementations(t) {
		nw, ok := d.(NoWaitReader)
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			p := bytes.Repeat([]byte("nowait"), 2000)
			if err := WriteFull(d, p, 4096); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(p))
			done, err := nw.ReadAtNoWait(got, 4096)
			if err != nil {
				t.Fatal(err)
			}
			// A File's pages were just written, so they are in the page
			// cache; should the kernel still decline, ReadAt is the answer.
			if done && !bytes.Equal(got, p) {
				t.Fatal("ReadAtNoWait reported done with other data than written")
			}
			if name == "Mem" && !done {
				t.Fatal("Mem declined a read: memory never waits")
			}
			if _, err := nw.ReadAtNoWait(got, testSize-10); !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("read past the end: err %v, want ErrOutOfRange", err)
			}
		})
	}
}
