package wire

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecode reads arbitrary bytes as a stream of frames: nothing panics,
// and every message that decodes re-encodes to a payload that decodes to
// the same message.
func FuzzDecode(f *testing.F) {
	for _, m := range samples() {
		f.Add(AppendFrame(nil, m))
	}
	// s2 and zstd frames as the link writes them (compress_test.go), so
	// mutations start inside the decompression paths.
	for _, b := range compressedSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for i := 0; i < 8; i++ {
			fr, err := ReadFrame(r, nil)
			if err != nil {
				return
			}
			m, err := Decode(fr)
			if err != nil {
				continue
			}
			again, err := Decode(Frame{Type: m.Type(), Payload: m.Append(nil)})
			if err != nil {
				t.Fatalf("re-encoded %v does not decode: %v", m.Type(), err)
			}
			if !reflect.DeepEqual(normalize(again), normalize(m)) {
				t.Fatalf("%v does not round-trip", m.Type())
			}
		}
	})
}
