// Package dlm is replicad's distributed lock manager: the Linux kernel
// DLM's semantics (VMS lock modes, queues and grant order, conversion
// deadlock, blocking callbacks, lock value blocks, recovery gated on
// fencing and quorum) as a service of the replicad daemon.
//
// A Node runs inside one process: it listens for its peers on a listener it
// is given, dials them, authenticates every connection with the shared
// secret (internal/peerauth), and hosts lockspaces. Each lockspace is a
// dlm/engine state machine (directory, mastering, remote operations,
// recovery) driven under a mutex, with a dispatcher goroutine that delivers
// callbacks in order per lock, outside any lock, so that callbacks may call
// back into the API.
//
// In-process users call Lockspace.Lock (or LockAsync), Lock.Convert,
// Lock.Unlock and Lock.Cancel. Programs on the node use the local client
// protocol on a unix socket (Node.ServeLocal, dlm/localproto, dlm/client);
// a client's locks are released when it disconnects, except PERSISTENT ones,
// which become orphans that a later request with the ORPHAN flag adopts.
//
// Membership, quorum and fencing come from a Membership (the cluster
// manager will provide one; Static serves until then, with failure
// detection by the transport and explicit fence confirmation).
//
// Goroutines: Node runs an accept loop, one reader per accepted connection,
// one sender per peer, a ticker and a membership watcher; each Lockspace
// runs a callback dispatcher; ServeLocal runs an accept loop and a reader
// and a writer per client. Close stops and waits for all of them.
package dlm
