// Package wire is the replication peer protocol's codec: frames and the
// messages they carry. It keeps no state; every decoder is fuzzed.
//
// A frame is an 8-byte header — magic "RP", message type, flags, 32-bit
// payload length, all big-endian — and the payload. Flag FlagS2 means the
// payload is s2-compressed (github.com/klauspost/compress/s2); the length
// is the compressed length. Payloads are at most MaxPayload bytes.
//
// Messages that carry volume data (Write, ResyncData) include a crc32c of
// the data; receivers check it and treat a mismatch as a broken link (the
// range is then resynced). Sequence numbers are per connection and rise by
// one per Write; acknowledgements are cumulative ("every Write up to Seq").
package wire
