package meta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/replicad/replicad/replication/disk"
)

// Magic identifies a replicad superblock ("RPLCMETA").
const Magic uint64 = 0x4154454d434c5052

// Version is the superblock format this build writes.
const Version uint32 = 1

// HistoryLen is the number of history UUIDs the superblock keeps.
const HistoryLen = 32

// UUIDJustCreated is the current UUID of metadata that has never been
// promoted or synced, as in DRBD.
const UUIDJustCreated uint64 = 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is crc32c.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Flags are the device flags of the superblock (DRBD's MDF_*).
type Flags uint32

// Device flags.
const (
	// FlagConsistent: the data is consistent (not mid-resync as a target).
	FlagConsistent Flags = 1 << iota
	// FlagWasUpToDate: the data was UpToDate when last detached.
	FlagWasUpToDate
	// FlagPrimary: the node is (or was, at a crash) primary.
	FlagPrimary
	// FlagCrashedPrimary: it was primary when it crashed; resync its
	// activity-log extents.
	FlagCrashedPrimary
	// FlagALClean: the activity log needs no replay (clean detach).
	FlagALClean
	// FlagPrimaryLostQuorum: it was primary and lost quorum.
	FlagPrimaryLostQuorum
	// FlagHaveQuorum: it had quorum when last written.
	FlagHaveQuorum
	// FlagTentativeGeneration: the current generation was taken from a
	// primary that had not confirmed it yet, or, as primary, not yet
	// recorded by enough nodes.
	FlagTentativeGeneration
	// FlagUncommittedGeneration: the tentative generation was not yet
	// recorded by a majority of the nodes under quorum, as last known (no
	// write in it was acknowledged before that).
	FlagUncommittedGeneration
	// FlagPendingGeneration: the tentative generation was announced by a
	// primary that had not taken it yet, as last known.
	FlagPendingGeneration
	// FlagCrashedSecondary: it was secondary and not detached cleanly, and
	// has not resynced as a target since: the activity-log replay marked
	// blocks whose data here may be older than its peers' (writes it
	// acknowledged may have been lost with a volatile cache).
	FlagCrashedSecondary
)

var flagNames = []string{"consistent", "was-up-to-date", "primary", "crashed-primary", "al-clean", "primary-lost-quorum", "have-quorum", "tentative-generation", "uncommitted-generation", "pending-generation", "crashed-secondary"}

// Names lists the flags that are set.
func (f Flags) Names() []string {
	var out []string
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// PeerFlags are per-peer-slot flags (DRBD's MDF_PEER_*).
type PeerFlags uint32

// Peer slot flags.
const (
	// PeerConnected: the peer was connected when last written.
	PeerConnected PeerFlags = 1 << iota
	// PeerOutdated: the peer's data is known to be Outdated.
	PeerOutdated
	// PeerFencing: the peer is being fenced.
	PeerFencing
	// PeerFullSync: the next sync with this peer must be a full sync.
	PeerFullSync
	// PeerPrimaryBeforeSplit: this node was primary when it lost the peer
	// (the "older primary" of a split brain).
	PeerPrimaryBeforeSplit
)

var peerFlagNames = []string{"connected", "outdated", "fencing", "full-sync", "primary-before-split"}

// Names lists the flags that are set.
func (f PeerFlags) Names() []string {
	var out []string
	for i, n := range peerFlagNames {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// NoNode marks a free peer slot.
const NoNode int32 = -1

// PeerSlot is one peer's generation and bitmap bookkeeping.
type PeerSlot struct {
	// NodeID of the peer using the slot, NoNode if free.
	NodeID int32
	// BitmapUUID is the current UUID at the moment this slot's bitmap began
	// collecting changes (0 when the bitmap is not in use).
	BitmapUUID uint64
	Flags      PeerFlags
}

// Superblock is the decoded first block of the metadata.
type Superblock struct {
	// Seq orders the two copies; the writer bumps it on every write.
	Seq uint64
	// DeviceUUID is random per create-md; every page and transaction carries it.
	DeviceUUID uint64
	NodeID     uint32
	// DataSize is the size of the data area in bytes.
	DataSize int64
	Internal bool
	Geometry Geometry
	Flags    Flags
	// CurrentUUID is the current data generation.
	CurrentUUID uint64
	// SyncTowardUUID, while not consistent, is the generation the
	// interrupted resync was bringing the data to (0: unknown).
	SyncTowardUUID uint64
	Peers          [MaxPeerSlots]PeerSlot
	History        [HistoryLen]uint64
}

// Layout returns the metadata layout for a superblock found on a device of
// devSize bytes (ignored for external metadata).
func (s *Superblock) Layout(devSize int64) (Layout, error) {
	if s.Internal {
		return InternalLayoutFor(devSize, s.DataSize, s.Geometry)
	}
	return ExternalLayout(s.DataSize, s.Geometry)
}

// Encoding offsets within the 4 KiB block.
const (
	sbMagic    = 0
	sbVersion  = 8
	sbCRC      = 12
	sbSeq      = 16
	sbDevUUID  = 24
	sbNodeID   = 32
	sbInternal = 36
	sbDataSize = 40
	sbMaxPeers = 48
	sbGran     = 52
	sbExtSize  = 56
	sbExtents  = 60
	sbFlags    = 64
	sbCurrent  = 72
	sbToward   = 80
	sbPeers    = 128
	peerSize   = 24
	sbHistory  = sbPeers + MaxPeerSlots*peerSize
)

// Marshal encodes the superblock into a 4 KiB block with its checksum.
func (s *Superblock) Marshal() []byte {
	b := make([]byte, BlockSize)
	le := binary.LittleEndian
	le.PutUint64(b[sbMagic:], Magic)
	le.PutUint32(b[sbVersion:], Version)
	le.PutUint64(b[sbSeq:], s.Seq)
	le.PutUint64(b[sbDevUUID:], s.DeviceUUID)
	le.PutUint32(b[sbNodeID:], s.NodeID)
	if s.Internal {
		b[sbInternal] = 1
	}
	le.PutUint64(b[sbDataSize:], uint64(s.DataSize))
	le.PutUint32(b[sbMaxPeers:], uint32(s.Geometry.MaxPeers))
	le.PutUint32(b[sbGran:], s.Geometry.BitmapGranularity)
	le.PutUint32(b[sbExtSize:], s.Geometry.ALExtentSize)
	le.PutUint32(b[sbExtents:], s.Geometry.ALExtents)
	le.PutUint32(b[sbFlags:], uint32(s.Flags))
	le.PutUint64(b[sbCurrent:], s.CurrentUUID)
	le.PutUint64(b[sbToward:], s.SyncTowardUUID)
	for i, p := range s.Peers {
		o := sbPeers + i*peerSize
		le.PutUint32(b[o:], uint32(p.NodeID))
		le.PutUint32(b[o+4:], uint32(p.Flags))
		le.PutUint64(b[o+8:], p.BitmapUUID)
	}
	for i, u := range s.History {
		le.PutUint64(b[sbHistory+i*8:], u)
	}
	le.PutUint32(b[sbCRC:], Checksum(b))
	return b
}

// HasMagic reports whether b starts with the superblock magic.
func HasMagic(b []byte) bool {
	return len(b) >= 8 && binary.LittleEndian.Uint64(b) == Magic
}

// UnmarshalSuperblock decodes and checks a 4 KiB block.
func UnmarshalSuperblock(b []byte) (Superblock, error) {
	var s Superblock
	if len(b) != BlockSize {
		return s, fmt.Errorf("%w: superblock is %d bytes, want %d", ErrCorrupt, len(b), BlockSize)
	}
	if !HasMagic(b) {
		return s, ErrNoMetadata
	}
	le := binary.LittleEndian
	want := le.Uint32(b[sbCRC:])
	var c [BlockSize]byte
	copy(c[:], b)
	le.PutUint32(c[sbCRC:], 0)
	if got := Checksum(c[:]); got != want {
		return s, fmt.Errorf("%w: superblock crc32c %08x, stored %08x", ErrCorrupt, got, want)
	}
	if v := le.Uint32(b[sbVersion:]); v != Version {
		return s, fmt.Errorf("%w: %d (this build reads %d)", ErrVersion, v, Version)
	}
	s.Seq = le.Uint64(b[sbSeq:])
	s.DeviceUUID = le.Uint64(b[sbDevUUID:])
	s.NodeID = le.Uint32(b[sbNodeID:])
	s.Internal = b[sbInternal] == 1
	s.DataSize = int64(le.Uint64(b[sbDataSize:]))
	s.Geometry = Geometry{
		MaxPeers:          int(le.Uint32(b[sbMaxPeers:])),
		BitmapGranularity: le.Uint32(b[sbGran:]),
		ALExtentSize:      le.Uint32(b[sbExtSize:]),
		ALExtents:         le.Uint32(b[sbExtents:]),
	}
	s.Flags = Flags(le.Uint32(b[sbFlags:]))
	s.CurrentUUID = le.Uint64(b[sbCurrent:])
	s.SyncTowardUUID = le.Uint64(b[sbToward:])
	for i := range s.Peers {
		o := sbPeers + i*peerSize
		s.Peers[i] = PeerSlot{
			NodeID:     int32(le.Uint32(b[o:])),
			Flags:      PeerFlags(le.Uint32(b[o+4:])),
			BitmapUUID: le.Uint64(b[o+8:]),
		}
	}
	for i := range s.History {
		s.History[i] = le.Uint64(b[sbHistory+i*8:])
	}
	if err := s.Geometry.Validate(); err != nil {
		return s, fmt.Errorf("%w: checksum passed but %v", ErrCorrupt, err)
	}
	if s.DataSize <= 0 {
		return s, fmt.Errorf("%w: checksum passed but data size is %d", ErrCorrupt, s.DataSize)
	}
	return s, nil
}

// ReadResult says what ReadSuperblock found.
type ReadResult struct {
	Superblock Superblock
	// Copy is the copy that was used (0 = A, 1 = B).
	Copy int
	// Damaged is set when the other copy carried the magic but failed its
	// checks: a torn or corrupt write that was skipped.
	Damaged error
}

// ReadSuperblock reads both copies at off and returns the valid one with
// the highest sequence number. It returns ErrNoMetadata when neither copy
// has the magic, and ErrCorrupt (or ErrVersion) when one does but none is
// valid.
func ReadSuperblock(d disk.Device, off int64) (ReadResult, error) {
	var res ReadResult
	var sbs [2]*Superblock
	var errs [2]error
	for i := range sbs {
		b := make([]byte, BlockSize)
		if err := disk.ReadFull(d, b, off+int64(i)*BlockSize); err != nil {
			return res, fmt.Errorf("read superblock copy %c: %w", 'A'+i, err)
		}
		s, err := UnmarshalSuperblock(b)
		if err != nil {
			errs[i] = err
			continue
		}
		sbs[i] = &s
	}
	best := -1
	for i, s := range sbs {
		if s != nil && (best < 0 || s.Seq > sbs[best].Seq) {
			best = i
		}
	}
	if best < 0 {
		if errors.Is(errs[0], ErrNoMetadata) && errors.Is(errs[1], ErrNoMetadata) {
			return res, ErrNoMetadata
		}
		for _, err := range errs {
			if err != nil && !errors.Is(err, ErrNoMetadata) {
				return res, err
			}
		}
	}
	res.Superblock, res.Copy = *sbs[best], best
	if other := errs[1-best]; other != nil && !errors.Is(other, ErrNoMetadata) {
		res.Damaged = other
	}
	return res, nil
}

// WriteSuperblock writes s as copy `into` (0 or 1) at off and syncs. Callers
// alternate copies and raise Seq, so that a torn write leaves the other,
// older copy valid.
func WriteSuperblock(d disk.Device, off int64, into int, s *Superblock) error {
	if err := disk.WriteFull(d, s.Marshal(), off+int64(into)*BlockSize); err != nil {
		return fmt.Errorf("write superblock copy %c: %w", 'A'+into, err)
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync superblock: %w", err)
	}
	return nil
}
