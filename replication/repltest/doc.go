// Package repltest is a deterministic, in-memory cluster for testing the
// replication engine with the real volume code on crash-simulating disks.
//
// One goroutine drives everything: client writes and flushes on the
// primary, local disk operations completing in any order, messages
// delivered per link in FIFO order (TCP never reorders within a
// connection), links breaking and reconnecting, nodes losing power (keeping
// any subset of unsynced sectors) and restarting, and failovers. A seeded
// generator picks each step, so a failure replays from its seed.
//
// Check verifies the properties replication promises (see Cluster.Check).
package repltest
