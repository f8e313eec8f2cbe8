// Package engine is the pure core of replication for one volume on one
// node: roles, the connection handshake (generation comparison, bitmap
// exchange, split-brain recovery), write tracking for protocols A, B and C,
// flush epochs, the transfer log, resync progress and the state names.
//
// The engine does no network I/O, starts no goroutines and reads no clock.
// Callers feed it events — a local write starts or finishes, a message
// arrives, a peer connects or goes away, a frame was sent — under one
// mutex, and perform the Output it returns: messages to queue per peer (in
// order), writes to complete, data to apply locally, peers to disconnect.
// Its only side door is Store, the volume's persistent state (generation
// UUIDs and bitmaps), which replication.Volume implements and the cluster
// simulation drives on crash-simulating disks — as etcd raft takes a
// Storage.
//
// # Guarantees it keeps
//
//   - A write is complete when the local write is done and, per connected
//     peer: protocol A, the Write frame was written to the socket; B, the
//     peer received it; C, the peer wrote it. A FLUSH also waits for every
//     protocol-C peer to flush.
//   - A write in the transfer log (not yet written by the peer) whose peer
//     goes away is marked out of sync for that peer; writes while a peer is
//     away set its bits through the volume's tracking.
//   - A bit is cleared only when a resync or verify found the block equal
//     on both sides.
//   - A primary that loses or lacks a peer starts a new data generation
//     before it changes data the peer does not get, so the next meeting
//     decides the sync direction by uuid.Compare.
package engine
