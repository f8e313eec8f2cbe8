// Package wire is the NBD protocol's codec (NetworkBlockDevice/nbd
// doc/proto.md): constants, the fixed-newstyle handshake messages, option
// parsing and replies, and transmission request and reply headers. It does
// no I/O beyond the io.Reader it is handed and keeps no state, so every
// decoder can be fuzzed on its own.
//
// Constants that github.com/pojntfx/go-nbd/pkg/protocol defines are taken
// from it; it lacks most of the protocol (FLUSH, FUA, TRIM, WRITE_ZEROES,
// EXPORT_NAME, STARTTLS, the error replies), which are defined here.
package wire
