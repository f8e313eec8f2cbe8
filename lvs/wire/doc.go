// Package wire encodes and decodes the few bytes of other people's
// protocols that replicad's health checks speak: the MySQL/MariaDB client
// handshake (server greeting, login, OK/ERR, auth switch) and an ONC RPC
// (RFC 5531) NULL call over TCP record marking, as sent to the NFS program.
//
// No maintained Go library does just this: MySQL drivers hide the greeting
// behind a full connection (and pull in database/sql), and the NFS
// libraries need rpcbind and more. The decoders take bytes from the network
// and are fuzzed; they never panic and bound every length they read.
//
// Everything here is pure: io.Reader/[]byte in, values out.
package wire
