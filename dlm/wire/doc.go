// Package wire is the binary encoding of the messages replicad's DLM nodes
// exchange: an Envelope per (lockspace, sender, receiver) batch, carrying a
// session sequence number and acknowledgement, and the Msgs inside it.
//
// Encoding (version 1): every integer is an unsigned varint unless noted,
// every string or byte slice is a varint length followed by the bytes.
//
//	envelope = version:u8 lockspace from fromInc to toInc seq ack count msg*
//	msg      = type:u8 gen id lkid name mode:i8 rqmode:i8 flags sb:u8 result:u8
//	           node lvb lvbseq bits:u8 view fence dir masters locks
//
// On a stream, each envelope is a frame: a 4-byte big-endian length, then
// the envelope. Unmarshal checks every length and range against the limits
// below and rejects trailing bytes, so a decoder fed untrusted bytes fails
// with ErrMalformed instead of allocating or panicking; it does not check
// that a message makes sense for its type, which the engine does.
package wire
