// Package disk is the one interface through which replicad touches block
// storage: volume data, metadata superblocks, bitmaps and the activity log.
//
// There are four implementations, so that durability is tested rather than
// hoped for:
//
//   - File: a real file or block device (pread/pwrite, fdatasync, fallocate or
//     BLKZEROOUT), the production path.
//   - Mem: sparse in-memory storage, for fast tests.
//   - Faulty: wraps any Device and injects errors by rule (operation, offset
//     range, after N calls, once or always).
//   - Crash: in-memory storage that remembers which 512-byte sectors were
//     written since the last Sync. Its CrashClone returns what a machine would
//     find after a power cut: every synced sector, and any subset of unsynced
//     ones (so multi-sector writes can be torn).
//
// Contract: WriteAt may return before the data is durable; Sync makes every
// write that returned before Sync was called durable. WriteAtSync (optional,
// see SyncWriter) makes that one write durable before returning, and nothing
// else. Zero leaves the range reading as zeroes on every implementation, so
// that two replicas that zero the same range stay identical.
package disk
