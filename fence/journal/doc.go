// Package journal frames the records of an append-only log so that a crash
// in the middle of an append is detected and skipped on the next read.
//
// Each record is written as one frame:
//
//	magic "RFJ1" (4 bytes) | payload length (uint32, big endian) |
//	CRC-32C of the payload (uint32, big endian) | payload
//
// Parse walks a log from the start. A frame whose header or checksum is
// wrong, or that is cut short by the end of the data, is damage: Parse skips
// to the next valid frame (found by its magic and checksum) and reports the
// skipped byte range. Damage that runs to the end of the data is a torn
// tail, the normal result of a crash during an append; the owner truncates
// the log to End before appending again. Damage followed by valid frames is
// reported but does not stop the read.
//
// The package is pure; the file that holds the log is package fence's.
package journal
