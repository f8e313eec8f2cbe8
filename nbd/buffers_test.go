package nbd

import "testing"

func TestBufferClasses(t *testing.T) {
	for _, n := range []uint32{1, 4096, 4097, 65536, 1 << 20, 1<<20 + 1, 32 << 20} {
		b := getBuf(n)
		if uint32(len(b)) != n || cap(b) < int(n) || cap(b)&(cap(b)-1) != 0 {
			t.Fatalf("getBuf(%d): len %d cap %d", n, len(b), cap(b))
		}
		putBuf(b)
		again := getBuf(n)
		if &again[:1][0] != &b[:1][0] {
			t.Fatalf("getBuf(%d) after putBuf did not reuse the buffer", n)
		}
		putBuf(again)
	}
	putBuf(make([]byte, 5000)) // not from getBuf: dropped, no panic
}
