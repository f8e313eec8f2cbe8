// Package meta is replicad's on-disk metadata format: the superblock, the
// layout of the metadata area, bitmap pages and activity-log transactions.
// It encodes and decodes; it keeps no state and starts no goroutines.
//
// # Layout
//
// Internal metadata sits at the end of the backing device, external metadata
// at the start of its own device (sizes in 4 KiB blocks):
//
//	internal: [ data | bitmap | activity log | superblock A | superblock B ]
//	external: [ superblock A | superblock B | activity log | bitmap ]
//
// The bitmap has one region per peer slot, each a run of pages with 32,640
// bits (one bit per BitmapGranularity bytes of data). The activity log is a
// ring of 4 KiB transactions.
//
// # Crash safety
//
// Every block carries a crc32c (Castagnoli). The superblock is written
// alternately to copy A and copy B with a rising sequence number; a reader
// takes the valid copy with the highest sequence, so a torn superblock write
// leaves the previous state in force. A bitmap page that fails its check is
// read as all bits set: a torn page can cost a larger resync, never a missed
// block. An activity-log transaction that fails its check is skipped; the
// ring holds enough transactions that the others rebuild the whole log (see
// ReplayAL). Pages and transactions carry the superblock's DeviceUUID, so
// leftovers from earlier metadata on the same device are never mistaken for
// current ones.
//
// All integers are little-endian.
package meta
