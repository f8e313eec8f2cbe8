package nbd

import (
	"math/bits"
	"sync"
)

// Payload buffers come from per-size-class pools (powers of two from 4 KiB
// to 128 MiB), so the hot path does not allocate.
const minClass = 12

var bufPools [28 - minClass + 1]sync.Pool

func sizeClass(n uint32) int {
	if n <= 1<<minClass {
		return 0
	}
	return bits.Len32(n-1) - minClass
}

// getBuf returns a buffer of length n.
func getBuf(n uint32) []byte {
	c := sizeClass(n)
	if p, ok := bufPools[c].Get().(*[]byte); ok {
		return (*p)[:n]
	}
	return make([]byte, n, 1<<(c+minClass))
}

// putBuf returns a buffer from getBuf.
func putBuf(b []byte) {
	if cap(b) == 0 {
		return
	}
	c := sizeClass(uint32(cap(b)))
	if cap(b) != 1<<(c+minClass) {
		return
	}
	b = b[:cap(b)]
	bufPools[c].Put(&b)
}
