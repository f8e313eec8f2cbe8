// Package activitylog is the pure core of the activity log: which extents of
// a volume are "hot" (may have writes in flight or not yet mirrored), which
// cold extent to evict when a new one is needed, and the transactions that
// record each change in the on-disk ring (replication/meta).
//
// The write-ahead rule it serves: a write may start only once its extents are
// in a committed transaction on stable storage; an extent may leave the log
// only when no write to it is in flight and, before the transaction that
// removes it is written, the bitmap bits for it are on stable storage. After
// a crash of a primary, the extents in the log are exactly the places where
// a peer may differ without the bitmap knowing, so only they are resynced.
//
// Log is not safe for concurrent use; the volume guards it with a mutex and
// performs the I/O around it.
package activitylog
