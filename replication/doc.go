// Package replication owns replicad's volumes: a backing device plus
// metadata (generation UUIDs, per-peer out-of-sync bitmaps, an activity log),
// and the I/O path every user of a volume goes through.
//
// A Volume is attached from its devices (Attach) after its metadata was
// initialised (CreateMetadata). Its I/O methods keep DESIGN.md's contracts:
//
//   - A write returns when it is in the backing device (page cache for a
//     file); Flush returns when every write that returned before Flush was
//     called is durable, whichever goroutine or connection issued it. A FUA
//     write is durable before it returns.
//   - Write-ahead activity log: a write starts only after its 4 MiB extents
//     are recorded in the on-disk activity log. After a crash of a primary,
//     those extents are marked out of sync for every peer, so only they are
//     resynced.
//   - A write that a peer does not get sets bits in that peer's bitmap, which
//     reach the disk before the extent leaves the activity log.
//   - Once the disk fails a sync, every later Flush fails too: Linux forgets
//     a write-back error after reporting it once, so a later successful
//     fsync proves nothing.
//
// Pure sub-packages: meta (format), activitylog, bitmap; disk is the I/O
// interface with its real, in-memory, faulty and crash-simulating devices.
package replication
