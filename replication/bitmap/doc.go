// Package bitmap is the in-memory form of a peer slot's out-of-sync bitmap:
// one bit per BitmapGranularity bytes of data, set when a block may differ
// from the peer and cleared only when it is known equal on both sides.
//
// It tracks which on-disk pages (replication/meta, 32,640 bits each) changed
// since they were last written, so the volume writes back only those. It
// keeps a running count of set bits for status and resync progress. It is
// not safe for concurrent use; the volume guards it.
package bitmap
