// Package client talks to a replicad node's DLM over its local unix socket
// (dlm/localproto), for repctl and for any program on the node that wants
// cluster-wide locks. A client's locks are released when it disconnects,
// except PERSISTENT ones, which stay held as orphans until a later client
// adopts them (Lock with the ORPHAN flag) and releases them.
//
// One goroutine per Client reads replies and events; Close stops it.
package client
