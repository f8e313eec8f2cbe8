package nbd

import "math/bits"

// Payload buffers come from per-size-class free lists (powers of two from
// 4 KiB to 256 MiB). Unlike sync.Pool, the lists survive garbage
// collections: with 1 MiB payloads a sync.Pool is emptied every few
// milliseconds and each miss allocates and zeroes a fresh megabyte. Each
// list is bounded (about 64 MiB per class, at most 1024 buffers), so idle
// memory stays bounded too.
const (
	minClass   = 12
	numClasses = 28 - minClass + 1
	classBytes = 64 << 20
)

var freeLists = func() (l [numClasses]chan []byte) {
	for c := range l {
		l[c] = make(chan []byte, max(2, min(1024, classBytes>>(c+minClass))))
	}
	return l
}()

func sizeClass(n uint32) int {
	if n <= 1<<minClass {
		return 0
	}
	return bits.Len32(n-1) - minClass
}

// getBuf returns a buffer of length n (at most 256 MiB).
func getBuf(n uint32) []byte {
	c := sizeClass(n)
	select {
	case b := <-freeLists[c]:
		return b[:n]
	default:
		return make([]byte, n, 1<<(c+minClass))
	}
}

// putBuf returns a buffer from getBuf; others are dropped.
func putBuf(b []byte) {
	if cap(b) < 1<<minClass {
		return
	}
	c := sizeClass(uint32(cap(b)))
	if c >= numClasses || cap(b) != 1<<(c+minClass) {
		return
	}
	select {
	case freeLists[c] <- b[:cap(b)]:
	default:
	}
}
