package meta

import "testing"

// The decoders read bytes from disks that may be damaged or belong to
// something else; none may panic or accept a block that fails its checks.

func FuzzUnmarshalSuperblock(f *testing.F) {
	s := sampleSuperblock()
	f.Add(s.Marshal())
	f.Add(make([]byte, BlockSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := UnmarshalSuperblock(b)
		if err != nil {
			return
		}
		if err := got.Geometry.Validate(); err != nil {
			t.Fatalf("accepted a superblock with invalid geometry: %v", err)
		}
		again, err := UnmarshalSuperblock(got.Marshal())
		if err != nil || again != got {
			t.Fatalf("accepted superblock does not round-trip: %v", err)
		}
	})
}

func FuzzUnmarshalALTransaction(f *testing.F) {
	tx := ALTransaction{Seq: 1, Updates: []ALUpdate{{1, 2}}, Context: []uint32{3}}
	b, _ := tx.Marshal(7)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := UnmarshalALTransaction(b, 7)
		if err != nil {
			return
		}
		if len(got.Updates) > ALMaxUpdates || len(got.Context) > ALContextPerTx {
			t.Fatal("accepted counts over the caps")
		}
		ReplayAL([]ALTransaction{got}, 100)
	})
}

func FuzzUnmarshalBitmapPage(f *testing.F) {
	b := make([]byte, BlockSize)
	MarshalBitmapPage(b, []uint64{1, 2, 3}, 0, 9)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		words := make([]uint64, WordsPerPage)
		UnmarshalBitmapPage(b, 0, 9, words)
	})
}
