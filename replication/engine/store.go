package engine

// Generation is the persistent generation state of the volume.
type Generation struct {
	Current uint64
	// History holds older generations, newest first (at most 32).
	History []uint64
	// Slots are the peer slots (index = slot number).
	Slots []Slot
	// Consistent: the data is not mid-resync as a target.
	Consistent bool
	// UpToDate: the data was the latest when last known (DRBD's
	// was-up-to-date).
	UpToDate bool
	// Primary: this node is primary (persisted so a crash is recognised).
	Primary bool
	// CrashedPrimary: the last run ended in a crash while primary.
	CrashedPrimary bool
	// CrashedSecondary: a run ended in a crash while secondary, and the
	// activity-log replay marked blocks whose data here may be older
	// than the peers' (acknowledged writes lost with a volatile cache);
	// cleared by a resync as target or a promotion.
	CrashedSecondary bool
	// Tentative: Current was taken from a primary that had not yet
	// confirmed it (it may have died with the old one), or, on a primary,
	// not yet recorded by enough nodes (commitIfRecorded); compared as the
	// previous generation against a node that does not know it.
	Tentative bool
	// Uncommitted: Current is tentative under quorum: not enough nodes
	// (commitSize) had recorded it when this node last heard from its
	// primary (or, as primary, knew). Writes in it wait for that record;
	// once this node is not primary it is void against a primary with
	// quorum that does not know it (uuid.Side.Uncommitted). Cleared with Tentative, and by a promotion
	// without quorum (writes then do not wait).
	Uncommitted bool
	// Pending: Current is tentative because its primary had announced it
	// and not yet taken it when this node last heard from it (State.Pending).
	// The primary may have taken it only after this node left, and then
	// written in it what this node lacks: against a peer resyncing
	// towards it, this node does not count as having it (lacksSyncToward).
	Pending bool
	// SyncToward, while not Consistent, is the generation of the source
	// of the resync that made the data Inconsistent: what the resync was
	// bringing it to (0: unknown). Only a node with that generation, or a
	// newer one descended from it, can finish the resync: an older node
	// as the source would overwrite newer blocks already synced with
	// older ones.
	SyncToward uint64
	// LostQuorum: this node lost quorum while primary, and has neither
	// regained it as primary nor resynced from a peer since. The majority
	// may have promoted another node meanwhile; a split brain with a node
	// that did not lose quorum is resolved by discarding this node's side
	// (DRBD's primary-lost-quorum), across restarts.
	LostQuorum bool
}

// Slot is one peer slot's generation bookkeeping.
type Slot struct {
	// Node is the peer using the slot, -1 if free.
	Node int32
	// Bitmap is the generation at which the slot began recording changes
	// the peer does not have (0: not recording).
	Bitmap uint64
	// Outdated: the peer's data is known to be outdated.
	Outdated bool
	// PrimaryBeforeSplit: this node was primary when it lost the peer.
	PrimaryBeforeSplit bool
}

// Store is the volume's persistent state. Bit operations work on the
// in-memory bitmaps (the volume persists them under its activity-log
// rules); SetGeneration writes the superblock and syncs.
type Store interface {
	Generation() Generation
	SetGeneration(Generation) error
	// SlotFor returns the peer slot of node, assigning a free one.
	SlotFor(node uint32) (int, error)
	// MarkOutOfSync sets the bits covering [off, off+n).
	MarkOutOfSync(slot int, off, n int64)
	// PersistBitmaps writes the bitmaps' changed pages and syncs: for
	// marks of blocks this node did not write (the activity log does not
	// cover them).
	PersistBitmaps() error
	// MarkAllOutOfSync sets every bit (full sync).
	MarkAllOutOfSync(slot int)
	// ClearInSync clears the bits of blocks wholly inside [off, off+n).
	ClearInSync(slot int, off, n int64)
	// NextOutOfSync returns the offset of the first out-of-sync block at or
	// after off.
	NextOutOfSync(slot int, off int64) (int64, bool)
	// OutOfSyncBytes is the number of out-of-sync bytes.
	OutOfSyncBytes(slot int) int64
	// BitmapWords copies n words of the slot's bitmap from word start
	// (fewer at the end); MergeBitmap ORs words in.
	BitmapWords(slot int, start, n int) []uint64
	MergeBitmap(slot int, start int, words []uint64)
	// BitmapLen is the number of 64-bit words in a slot's bitmap.
	BitmapLen() int
	// Granularity is the number of bytes one bit covers.
	Granularity() int64
	// Size is the data size in bytes.
	Size() int64
}
