package journal

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/replicad/replicad/internal/testenv"
)

func frames(t testing.TB, payloads ...string) []byte {
	var b []byte
	for _, p := range payloads {
		var err error
		if b, err = AppendFrame(b, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func payloads(r Result) []string {
	var out []string
	for _, rec := range r.Records {
		out = append(out, string(rec.Payload))
	}
	return out
}

func TestParseIntactLog(t *testing.T) {
	data := frames(t, "a", "", "ccc")
	r := Parse(data)
	if got := fmt.Sprint(payloads(r)); got != "[a  ccc]" {
		t.Fatalf("records = %s", got)
	}
	if r.End != int64(len(data)) || r.TornTail || len(r.Damaged) != 0 {
		t.Fatalf("result = %+v, want clean", r)
	}
}

// A crash during an append leaves any prefix of the last frame on disk. At
// every cut point the earlier records survive and the rest is a torn tail.
func TestEveryTornTailIsSkipped(t *testing.T) {
	good := frames(t, "first", "second")
	last := frames(t, "third record")
	for cut := 1; cut < len(last); cut++ {
		data := append(append([]byte{}, good...), last[:cut]...)
		r := Parse(data)
		if got := fmt.Sprint(payloads(r)); got != "[first second]" {
			t.Fatalf("cut %d: records %s", cut, got)
		}
		if !r.TornTail || r.End != int64(len(good)) {
			t.Fatalf("cut %d: TornTail=%v End=%d, want torn at %d", cut, r.TornTail, r.End, len(good))
		}
	}
}

func TestZeroFilledTailIsTorn(t *testing.T) {
	data := append(frames(t, "a"), make([]byte, 4096)...)
	r := Parse(data)
	if !r.TornTail || len(r.Records) != 1 || r.End != int64(HeaderSize+1) {
		t.Fatalf("result = %+v", r)
	}
}

func TestCorruptMiddleRecordIsSkippedAndReadContinues(t *testing.T) {
	data := frames(t, "one", "two", "three")
	second := HeaderSize + 3
	data[second+HeaderSize] ^= 0xff // flip a payload byte of "two"
	r := Parse(data)
	if got := fmt.Sprint(payloads(r)); got != "[one three]" {
		t.Fatalf("records %s", got)
	}
	if r.TornTail || len(r.Damaged) != 1 || r.Damaged[0].Offset != int64(second) || r.Damaged[0].Why != "checksum mismatch" {
		t.Fatalf("damage = %+v torn=%v", r.Damaged, r.TornTail)
	}
	if r.End != int64(len(data)) {
		t.Fatalf("End = %d, want %d", r.End, len(data))
	}
}

func TestAppendAfterTruncatingTornTail(t *testing.T) {
	data := append(frames(t, "a", "b"), []byte("RFJ1\x00\x00")...)
	r := Parse(data)
	data = append(data[:r.End], frames(t, "c")...)
	if got := fmt.Sprint(payloads(Parse(data))); got != "[a b c]" {
		t.Fatalf("records %s", got)
	}
}

func TestRandomCorruptionNeverLosesIntactFrames(t *testing.T) {
	rnd := testenv.Rand(t)
	for round := 0; round < 2000; round++ {
		var data []byte
		var want []string
		var spans [][2]int
		for i := 0; i < 1+rnd.IntN(8); i++ {
			p := bytes.Repeat([]byte{byte('a' + i)}, rnd.IntN(40))
			start := len(data)
			data, _ = AppendFrame(data, p)
			spans = append(spans, [2]int{start, len(data)})
			want = append(want, string(p))
		}
		// Corrupt one byte; exactly the frame holding it must disappear.
		at := rnd.IntN(len(data))
		data[at] ^= byte(1 + rnd.IntN(255))
		r := Parse(data)
		var expect []string
		for i, s := range spans {
			if at < s[0] || at >= s[1] {
				expect = append(expect, want[i])
			}
		}
		if fmt.Sprint(payloads(r)) != fmt.Sprint(expect) {
			t.Fatalf("round %d: corrupt byte %d: records %q, want %q", round, at, payloads(r), expect)
		}
	}
}

func TestOversizedRecordIsRefused(t *testing.T) {
	if _, err := AppendFrame(nil, make([]byte, MaxPayload+1)); err == nil {
		t.Fatal("AppendFrame accepted a record over MaxPayload")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(frames(f, "a", "bb"))
	f.Add(append(frames(f, "x"), "RFJ1\x00\x00\x00\x05"...))
	f.Add([]byte("RFJ1RFJ1RFJ1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := Parse(data)
		if r.End > int64(len(data)) {
			t.Fatalf("End %d past data %d", r.End, len(data))
		}
		// Re-framing what was read yields the same records, and an
		// append after truncating to End is read back after them.
		var again []byte
		for _, rec := range r.Records {
			again, _ = AppendFrame(again, rec.Payload)
		}
		if fmt.Sprint(payloads(Parse(again))) != fmt.Sprint(payloads(r)) {
			t.Fatal("re-framed records differ")
		}
		if r.TornTail {
			fixed := append(append([]byte{}, data[:r.End]...), frames(t, "tail")...)
			got := payloads(Parse(fixed))
			if len(got) < 1 || got[len(got)-1] != "tail" {
				t.Fatalf("append after truncation lost: %q", got)
			}
		}
	})
}
