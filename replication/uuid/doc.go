// Package uuid is the pure logic of generation UUIDs: how two nodes that
// meet decide between no sync, a bitmap-based resync (and its direction), a
// full sync, split brain and unrelated data, and how a split brain is
// resolved automatically by the after-sb-0pri, after-sb-1pri and
// after-sb-2pri policies.
//
// The rules follow DRBD's uuid comparison (drbd_uuid_compare in
// drbd_receiver.c), in DRBD's order; Result.Rule names the rule that
// decided, for logs and for tests. Compare is symmetric: Compare(a, b) and
// Compare(b, a) always give mirror-image decisions, so both ends of a
// connection agree without negotiating.
//
// Bit 0 of a UUID is DRBD's "was primary" marker and is ignored when
// comparing. UUIDs are 64-bit random values; 0 means "none" and 4 is the
// just-created UUID of fresh metadata.
package uuid
