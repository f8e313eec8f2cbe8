package meta

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// BlockSize is the unit of every metadata write.
const BlockSize = 4096

// MaxPeerSlots is the number of peer slots the superblock has room for.
const MaxPeerSlots = 32

// Geometry is what create-md fixes for the life of the metadata.
type Geometry struct {
	// MaxPeers is the number of bitmap slots, one per peer this node can
	// replicate with (1..31; a three-node cluster needs 2).
	MaxPeers int `mapstructure:"max-peers"`
	// BitmapGranularity is how many bytes of data one bitmap bit covers: a
	// power of two from 4 KiB to 1 MiB. Default 4 KiB.
	BitmapGranularity uint32 `mapstructure:"bitmap-granularity"`
	// ALExtentSize is the span of one activity-log extent: a power of two
	// from 64 KiB to 128 MiB, at least BitmapGranularity. Default 4 MiB.
	ALExtentSize uint32 `mapstructure:"al-extent-size"`
	// ALExtents is how many extents the activity log keeps hot: 67..65534.
	// Default 1237 (about 4.8 GiB with 4 MiB extents). After a crash of a
	// primary at most ALExtents*ALExtentSize bytes are resynced.
	ALExtents uint32 `mapstructure:"al-extents"`
}

// DefaultGeometry returns DRBD's defaults with two peer slots.
func DefaultGeometry() Geometry {
	return Geometry{MaxPeers: 2, BitmapGranularity: 4096, ALExtentSize: 4 << 20, ALExtents: 1237}
}

// Validate reports every problem with the geometry.
func (g Geometry) Validate() error {
	var p []string
	if g.MaxPeers < 1 || g.MaxPeers > MaxPeerSlots-1 {
		p = append(p, fmt.Sprintf("max-peers: %d; want 1..%d", g.MaxPeers, MaxPeerSlots-1))
	}
	if bits.OnesCount32(g.BitmapGranularity) != 1 || g.BitmapGranularity < 4096 || g.BitmapGranularity > 1<<20 {
		p = append(p, fmt.Sprintf("bitmap-granularity: %d B; want a power of two from 4 KiB to 1 MiB", g.BitmapGranularity))
	}
	if bits.OnesCount32(g.ALExtentSize) != 1 || g.ALExtentSize < 64<<10 || g.ALExtentSize > 128<<20 {
		p = append(p, fmt.Sprintf("al-extent-size: %d B; want a power of two from 64 KiB to 128 MiB", g.ALExtentSize))
	} else if g.ALExtentSize < g.BitmapGranularity {
		p = append(p, fmt.Sprintf("al-extent-size: %d B is smaller than bitmap-granularity %d B", g.ALExtentSize, g.BitmapGranularity))
	}
	if g.ALExtents < 67 || g.ALExtents > 65534 {
		p = append(p, fmt.Sprintf("al-extents: %d; want 67..65534", g.ALExtents))
	}
	if len(p) > 0 {
		return fmt.Errorf("%w: %s", ErrGeometry, strings.Join(p, "; "))
	}
	return nil
}

// Layout says where each part of the metadata lives.
type Layout struct {
	Internal bool
	// DataSize is the number of bytes of the data area that users see.
	DataSize int64
	// SuperblockOffset is the offset of copy A; copy B follows it.
	SuperblockOffset int64
	// ALOffset and ALTransactions locate the activity-log ring.
	ALOffset       int64
	ALTransactions int
	// BitmapOffset is the start of slot 0's bitmap; slot s starts
	// s*BitmapPagesPerSlot pages later.
	BitmapOffset       int64
	BitmapPagesPerSlot int64
	// MetaSize is the total size of the metadata area.
	MetaSize int64
	Geometry Geometry
}

// BitmapBits is the number of bits a data area of the layout's size needs.
func (l Layout) BitmapBits() int64 {
	return ceilDiv(l.DataSize, int64(l.Geometry.BitmapGranularity))
}

// BitmapPageOffset is where page idx of slot's bitmap lives.
func (l Layout) BitmapPageOffset(slot int, page int64) int64 {
	return l.BitmapOffset + (int64(slot)*l.BitmapPagesPerSlot+page)*BlockSize
}

// BitmapPageIndex is the global index stamped into a page (slot-major).
func (l Layout) BitmapPageIndex(slot int, page int64) uint32 {
	return uint32(int64(slot)*l.BitmapPagesPerSlot + page)
}

// ALTransactionOffset is where ring position i lives.
func (l Layout) ALTransactionOffset(i int) int64 { return l.ALOffset + int64(i)*BlockSize }

// Extents is the number of activity-log extents the data area spans.
func (l Layout) Extents() int64 { return ceilDiv(l.DataSize, int64(l.Geometry.ALExtentSize)) }

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// ALRingSize is the number of transactions in the ring for n extents: enough
// that, with the newest transaction torn, the others still rewrite every slot
// (each transaction carries ALContextPerTx slots of context), and never fewer
// than 8.
func ALRingSize(n uint32) int {
	return max(8, int(ceilDiv(int64(n), ALContextPerTx))+2)
}

func metaSize(dataSize int64, g Geometry) (pagesPerSlot, total int64) {
	nbits := ceilDiv(dataSize, int64(g.BitmapGranularity))
	pagesPerSlot = max(1, ceilDiv(nbits, BitsPerPage))
	total = 2*BlockSize + int64(ALRingSize(g.ALExtents))*BlockSize + int64(g.MaxPeers)*pagesPerSlot*BlockSize
	return pagesPerSlot, total
}

// InternalLayout lays metadata out at the end of a device of devSize bytes.
// The data area is what remains, rounded down to 4 KiB.
func InternalLayout(devSize int64, g Geometry) (Layout, error) {
	if err := g.Validate(); err != nil {
		return Layout{}, err
	}
	// The bitmap for the whole device is an upper bound for the bitmap of
	// what remains, so data + metadata always fits.
	_, upper := metaSize(devSize, g)
	data := (devSize - upper) &^ (BlockSize - 1)
	if data <= 0 {
		return Layout{}, fmt.Errorf("%w: a %d-byte device cannot hold %d bytes of internal metadata and any data", ErrGeometry, devSize, upper)
	}
	return internalAt(devSize, data, g)
}

// InternalLayoutFor reconstructs the internal layout recorded in a
// superblock read from a device of devSize bytes.
func InternalLayoutFor(devSize, dataSize int64, g Geometry) (Layout, error) {
	if err := g.Validate(); err != nil {
		return Layout{}, err
	}
	return internalAt(devSize, dataSize, g)
}

func internalAt(devSize, data int64, g Geometry) (Layout, error) {
	pps, total := metaSize(data, g)
	ring := ALRingSize(g.ALExtents)
	l := Layout{
		Internal:           true,
		DataSize:           data,
		SuperblockOffset:   devSize - 2*BlockSize,
		ALTransactions:     ring,
		BitmapPagesPerSlot: pps,
		MetaSize:           total,
		Geometry:           g,
	}
	l.ALOffset = l.SuperblockOffset - int64(ring)*BlockSize
	l.BitmapOffset = l.ALOffset - int64(g.MaxPeers)*pps*BlockSize
	if data <= 0 || l.BitmapOffset < data {
		return Layout{}, &SizeError{What: "backing device", Have: devSize, Need: data + total}
	}
	return l, nil
}

// ExternalLayout lays out metadata at the start of its own device for a data
// area of dataSize bytes.
func ExternalLayout(dataSize int64, g Geometry) (Layout, error) {
	if err := g.Validate(); err != nil {
		return Layout{}, err
	}
	if dataSize <= 0 {
		return Layout{}, fmt.Errorf("%w: data size %d", ErrGeometry, dataSize)
	}
	pps, total := metaSize(dataSize, g)
	ring := ALRingSize(g.ALExtents)
	return Layout{
		DataSize:           dataSize,
		SuperblockOffset:   0,
		ALOffset:           2 * BlockSize,
		ALTransactions:     ring,
		BitmapOffset:       2*BlockSize + int64(ring)*BlockSize,
		BitmapPagesPerSlot: pps,
		MetaSize:           total,
		Geometry:           g,
	}, nil
}

// SizeError reports that a device is smaller than needed, with both sizes.
type SizeError struct {
	What       string
	Have, Need int64
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("%s is %s but %s are needed", e.What, FormatBytes(e.Have), FormatBytes(e.Need))
}

// Is makes errors.Is(err, ErrGeometry) true for size errors.
func (e *SizeError) Is(target error) bool { return errors.Is(target, ErrGeometry) }

// FormatBytes prints a byte count exactly and in binary units.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTPE"[exp], n)
}
