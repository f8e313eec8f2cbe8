// Package localproto is the DLM's node-local client protocol: what a
// program on the node (repctl, or any client of dlm/client) and the daemon
// say to each other on the DLM's unix socket.
//
// Every message is a frame (a 4-byte big-endian length, then the body); a
// body is one Msg (version 1): every integer an unsigned varint unless
// noted, every string or byte slice a varint length and the bytes:
//
//	msg = version:u8 type:u8 req lockspace name lkid mode:i8 flags lvb
//	      lvblen:u8 force:u8 result:u8 sb:u8 lvbseq bits:u8 code:u8 err data
//
// The client sends requests (Hello, Join, Leave, List, Dump, Lock, Convert,
// Unlock, Cancel), each with a request number that the server's Reply
// echoes; the server also sends Completion and Blocking events for the
// client's locks, at any time, possibly before the Reply that names a new
// lock's id. Decode bounds every field and rejects trailing bytes.
package localproto
