package meta

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/replication/disk"
)

func sampleSuperblock() Superblock {
	s := Superblock{
		Seq: 7, DeviceUUID: 0xfeedface, NodeID: 2, DataSize: 1 << 30, Internal: true,
		Geometry: DefaultGeometry(), Flags: FlagConsistent | FlagPrimary, CurrentUUID: 0xabcdef01,
		SyncTowardUUID: 0x5eed,
	}
	for i := range s.Peers {
		s.Peers[i].NodeID = NoNode
	}
	s.Peers[0] = PeerSlot{NodeID: 1, BitmapUUID: 0x77, Flags: PeerOutdated}
	s.History[0], s.History[1] = 0x55, 0x66
	return s
}

func TestSuperblockRoundTrip(t *testing.T) {
	s := sampleSuperblock()
	got, err := UnmarshalSuperblock(s.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if got != s {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
}

// Every single-bit flip anywhere in the block is detected.
func TestSuperblockDetectsEveryBitFlip(t *testing.T) {
	s := sampleSuperblock()
	b := s.Marshal()
	for i := 0; i < len(b)*8; i += 7 {
		c := bytes.Clone(b)
		c[i/8] ^= 1 << (i % 8)
		if _, err := UnmarshalSuperblock(c); err == nil {
			t.Fatalf("flip of bit %d went undetected", i)
		}
	}
}

func TestSuperblockVersion(t *testing.T) {
	s := sampleSuperblock()
	b := s.Marshal()
	b[sbVersion] = 9
	b[sbCRC], b[sbCRC+1], b[sbCRC+2], b[sbCRC+3] = 0, 0, 0, 0
	crc := Checksum(b)
	b[sbCRC], b[sbCRC+1], b[sbCRC+2], b[sbCRC+3] = byte(crc), byte(crc>>8), byte(crc>>16), byte(crc>>24)
	if _, err := UnmarshalSuperblock(b); !errors.Is(err, ErrVersion) {
		t.Fatalf("err %v, want ErrVersion", err)
	}
}

func TestReadSuperblockStates(t *testing.T) {
	d := disk.NewMem(2 * BlockSize)
	if _, err := ReadSuperblock(d, 0); !errors.Is(err, ErrNoMetadata) {
		t.Fatalf("blank device: err %v, want ErrNoMetadata", err)
	}
	s := sampleSuperblock()
	if err := WriteSuperblock(d, 0, 0, &s); err != nil {
		t.Fatal(err)
	}
	res, err := ReadSuperblock(d, 0)
	if err != nil || res.Superblock.Seq != 7 || res.Copy != 0 || res.Damaged != nil {
		t.Fatalf("one copy: %+v, %v", res, err)
	}
	s.Seq = 8
	s.CurrentUUID = 0x99
	WriteSuperblock(d, 0, 1, &s)
	res, _ = ReadSuperblock(d, 0)
	if res.Copy != 1 || res.Superblock.CurrentUUID != 0x99 {
		t.Fatalf("newer copy B not chosen: %+v", res)
	}
	// Damage copy B: copy A is used and the damage reported.
	d.WriteAt([]byte{1, 2, 3}, BlockSize+100)
	res, err = ReadSuperblock(d, 0)
	if err != nil || res.Copy != 0 || res.Superblock.Seq != 7 || !errors.Is(res.Damaged, ErrCorrupt) {
		t.Fatalf("damaged B: %+v, %v", res, err)
	}
	// Damage copy A too: corrupt, not "no metadata".
	d.WriteAt([]byte{1, 2, 3}, 100)
	if _, err := ReadSuperblock(d, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("both damaged: err %v, want ErrCorrupt", err)
	}
}

// TestSuperblockTornWrites: a superblock write that is cut by a power loss
// at any sector boundary leaves either the previous or the new state.
func TestSuperblockTornWrites(t *testing.T) {
	r := testenv.Rand(t)
	d := disk.NewCrash(2 * BlockSize)
	s := sampleSuperblock()
	s.Seq = 1
	WriteSuperblock(d, 0, 0, &s)
	into := 1
	for i := 0; i < 500; i++ {
		prev := s
		s.Seq++
		s.CurrentUUID = r.Uint64()
		disk.WriteFull(d, s.Marshal(), int64(into)*BlockSize)
		res, err := ReadSuperblock(d.CrashClone(disk.RandomKeep(r)), 0)
		if err != nil {
			t.Fatalf("write %d: crash left no readable superblock: %v", i, err)
		}
		if res.Superblock != prev && res.Superblock != s {
			t.Fatalf("write %d: crash produced a superblock that was never written", i)
		}
		d.Sync()
		into = 1 - into
	}
}

func TestBitmapPage(t *testing.T) {
	words := make([]uint64, WordsPerPage)
	for i := range words {
		words[i] = uint64(i) * 0x9e3779b97f4a7c15
	}
	b := make([]byte, BlockSize)
	MarshalBitmapPage(b, words, 5, 0xaa)
	got := make([]uint64, WordsPerPage)
	if err := UnmarshalBitmapPage(b, 5, 0xaa, got); err != nil {
		t.Fatal(err)
	}
	if !equalWords(got, words) {
		t.Fatal("bitmap page round trip differs")
	}
	if err := UnmarshalBitmapPage(b, 6, 0xaa, got); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("wrong index: %v", err)
	}
	if err := UnmarshalBitmapPage(b, 5, 0xab, got); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("stale page of other metadata: %v", err)
	}
	b[2000] ^= 4
	if err := UnmarshalBitmapPage(b, 5, 0xaa, got); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v", err)
	}
}

func equalWords(a, b []uint64) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestALTransactionRoundTrip(t *testing.T) {
	tx := ALTransaction{Seq: 99, Updates: []ALUpdate{{1, 2}, {3, NoExtent}}, ContextStart: 10, Context: []uint32{4, 5, NoExtent}}
	b, err := tx.Marshal(0xbeef)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalALTransaction(b, 0xbeef)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 99 || got.ContextStart != 10 || len(got.Updates) != 2 || got.Updates[1] != (ALUpdate{3, NoExtent}) || len(got.Context) != 3 || got.Context[2] != NoExtent {
		t.Fatalf("round trip: %+v", got)
	}
	if _, err := UnmarshalALTransaction(b, 0xbeee); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("other metadata's transaction accepted: %v", err)
	}
	tooMany := ALTransaction{Updates: make([]ALUpdate, ALMaxUpdates+1)}
	if _, err := tooMany.Marshal(1); err == nil {
		t.Fatal("transaction over the update cap marshalled")
	}
}

func TestReplayOrdersBySequence(t *testing.T) {
	txs := []ALTransaction{
		{Seq: 3, Updates: []ALUpdate{{0, 30}}},
		{Seq: 1, Updates: []ALUpdate{{0, 10}, {1, 11}}},
		{Seq: 2, ContextStart: 1, Context: []uint32{21}},
	}
	slots, last := ReplayAL(txs, 3)
	if last != 3 || slots[0] != 30 || slots[1] != 21 || slots[2] != NoExtent {
		t.Fatalf("replay = %v (last %d), want [30 21 empty] (3)", slots, last)
	}
}

func TestLayouts(t *testing.T) {
	g := DefaultGeometry()
	const dev = 1 << 30
	l, err := InternalLayout(dev, g)
	if err != nil {
		t.Fatal(err)
	}
	if l.SuperblockOffset != dev-2*BlockSize || l.DataSize%BlockSize != 0 || l.BitmapOffset < l.DataSize {
		t.Fatalf("internal layout %+v", l)
	}
	if l.BitmapBits() > l.BitmapPagesPerSlot*BitsPerPage {
		t.Fatalf("bitmap of %d pages cannot hold %d bits", l.BitmapPagesPerSlot, l.BitmapBits())
	}
	again, err := InternalLayoutFor(dev, l.DataSize, g)
	if err != nil || again != l {
		t.Fatalf("layout from the superblock differs: %+v, %v", again, err)
	}
	// The same superblock on a shrunken device: a size error naming both sizes.
	_, err = InternalLayoutFor(dev/2, l.DataSize, g)
	var se *SizeError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "512.0 MiB") {
		t.Fatalf("shrunken device: err %v, want a SizeError with both sizes", err)
	}
	if _, err := InternalLayout(12*BlockSize, g); err == nil {
		t.Fatal("a 48 KiB device (all of it needed for metadata) accepted internal metadata")
	}
	x, err := ExternalLayout(dev, g)
	if err != nil || x.DataSize != dev || x.SuperblockOffset != 0 || x.BitmapOffset != 2*BlockSize+int64(x.ALTransactions)*BlockSize {
		t.Fatalf("external layout %+v, %v", x, err)
	}
}

func TestGeometryValidateReportsEveryProblem(t *testing.T) {
	err := Geometry{MaxPeers: 0, BitmapGranularity: 3000, ALExtentSize: 1 << 10, ALExtents: 5}.Validate()
	for _, want := range []string{"max-peers", "bitmap-granularity", "al-extent-size", "al-extents"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %v does not mention %s", err, want)
		}
	}
	if err := DefaultGeometry().Validate(); err != nil {
		t.Fatal(err)
	}
}
