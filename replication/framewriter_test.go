package replication

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestFrameWriterKeepsOrder mixes small frames, large payloads (sent
// without a copy) and flushes: the stream is the frames in order.
func TestFrameWriterKeepsOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var out bytes.Buffer
	f := &frameWriter{w: &out}
	var want []byte
	for i := 0; i < 600; i++ {
		head := make([]byte, 1+rng.IntN(40))
		for j := range head {
			head[j] = byte(rng.Uint32())
		}
		var data []byte
		switch rng.IntN(4) {
		case 0:
			data = make([]byte, largePayload+rng.IntN(256<<10))
		case 1:
			data = make([]byte, rng.IntN(largePayload))
		}
		for j := range data {
			data[j] = byte(j ^ i)
		}
		want = append(append(want, head...), data...)
		if err := f.writeData(head, data); err != nil {
			t.Fatal(err)
		}
		if len(data) >= largePayload && len(f.buf) != 0 {
			t.Fatalf("frame %d: a large payload left %d bytes gathered", i, len(f.buf))
		}
		if len(f.buf) > frameBuffer {
			t.Fatalf("frame %d: %d bytes gathered, over %d", i, len(f.buf), frameBuffer)
		}
		if rng.IntN(50) == 0 {
			if err := f.flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := f.flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("stream differs: %d bytes written, want %d", out.Len(), len(want))
	}
}
