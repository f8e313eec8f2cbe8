package meta

import (
	"encoding/binary"
	"fmt"
)

// Bitmap page encoding: crc32c, global page index, device UUID, then bits.
const (
	pageHeader = 16
	// WordsPerPage is the number of 64-bit bitmap words in one page.
	WordsPerPage = (BlockSize - pageHeader) / 8
	// BitsPerPage is the number of bitmap bits in one page.
	BitsPerPage = WordsPerPage * 64
)

// MarshalBitmapPage encodes words (at most WordsPerPage; missing words are
// zero) as page index of the metadata identified by devUUID, into dst (4 KiB).
func MarshalBitmapPage(dst []byte, words []uint64, index uint32, devUUID uint64) {
	le := binary.LittleEndian
	clear(dst[:BlockSize])
	le.PutUint32(dst[4:], index)
	le.PutUint64(dst[8:], devUUID)
	for i, w := range words[:min(len(words), WordsPerPage)] {
		le.PutUint64(dst[pageHeader+i*8:], w)
	}
	le.PutUint32(dst[0:], Checksum(dst[4:BlockSize]))
}

// UnmarshalBitmapPage decodes a page into words (len WordsPerPage). A page
// that fails its checksum or belongs to other metadata returns ErrCorrupt and
// leaves words untouched; callers treat such a page as all bits set.
func UnmarshalBitmapPage(src []byte, index uint32, devUUID uint64, words []uint64) error {
	if len(src) != BlockSize {
		return fmt.Errorf("%w: bitmap page is %d bytes", ErrCorrupt, len(src))
	}
	le := binary.LittleEndian
	if got, want := Checksum(src[4:]), le.Uint32(src); got != want {
		return fmt.Errorf("%w: bitmap page %d crc32c %08x, stored %08x", ErrCorrupt, index, got, want)
	}
	if got := le.Uint32(src[4:]); got != index {
		return fmt.Errorf("%w: bitmap page %d claims index %d", ErrCorrupt, index, got)
	}
	if got := le.Uint64(src[8:]); got != devUUID {
		return fmt.Errorf("%w: bitmap page %d belongs to metadata %016x, not %016x", ErrCorrupt, index, got, devUUID)
	}
	for i := range words[:min(len(words), WordsPerPage)] {
		words[i] = le.Uint64(src[pageHeader+i*8:])
	}
	return nil
}
