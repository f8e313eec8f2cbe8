// Package nbd is replicad's NBD server: the fixed-newstyle handshake
// (EXPORT_NAME, INFO, GO, LIST, ABORT, STARTTLS; every other option is
// answered UNSUP and negotiation goes on) and the transmission phase with
// READ, WRITE, FLUSH, TRIM, WRITE_ZEROES (NO_HOLE) and DISC, FUA on every
// command that writes, many requests in flight per connection and replies in
// completion order.
//
// Why not pojntfx/go-nbd's server: it has no FLUSH, FUA, TRIM or
// WRITE_ZEROES (so the kernel assumes write-through while its writes sit in
// the page cache), serves one request at a time, drops the connection on
// I/O errors and desynchronises on unknown commands. Its protocol constants
// are used in nbd/wire.
//
// # Contract with backends
//
// Every export advertises SEND_FLUSH, SEND_FUA and CAN_MULTI_CONN; a
// Backend must make Flush cover every write that returned before it, on any
// connection of the export, and make FUA writes durable before returning.
// replication.Volume does. The server checks ranges, lengths and flags
// before calling the backend, so backends see only valid requests; a
// backend error becomes the reply's error (EPERM, ENOSPC, EINVAL through the
// sentinels in errors.go, EIO otherwise) and the connection stays up.
//
// # Goroutines
//
// Per connection: the connection goroutine negotiates, then reads requests.
// Reads a NoWaitReader backend answers from memory are served by the
// reader itself; a write of 256 KiB or more is served by the goroutine that
// read its payload, after it started a new reader; every other request runs
// in its own goroutine. At most Config.MaxInflight requests per connection
// are received and not yet answered. One writer goroutine sends replies,
// flushing its buffer when no reply is waiting; the reader hands it its own
// replies in one batch before it waits for the socket. On DISC, EOF or a
// framing error the reader stops, waits for the requests in flight, lets
// the writer drain and closes.
package nbd
