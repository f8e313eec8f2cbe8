// Package engine is the distributed half of replicad's DLM as a
// deterministic state machine: one Engine per lockspace per node, fed
// local lock calls, envelopes from peers, cluster-membership changes, fence
// confirmations and ticks, and producing envelopes to send and callbacks to
// deliver. It has no goroutines, sockets or clocks; the dlm package wraps
// it with those, and dlm/dlmsim drives several engines through a simulated
// network.
//
// Distribution follows the Linux kernel DLM (fs/dlm): a resource directory
// by hash over the lockspace's members names each resource's master; the
// first node to look a resource up masters it; the master keeps the
// resource's queues in a locktable.Table and every other node keeps a
// process copy of its own locks. Operations on remote resources travel as
// request/convert/unlock/cancel messages with replies, and the master sends
// asynchronous grant and blocking-callback messages.
//
// Between two engines runs a session (the kernel's midcomms): envelopes are
// numbered per pair of process incarnations, acknowledged, retransmitted on
// ticks and delivered exactly once in order, so the network below may delay,
// reorder, duplicate or drop them.
//
// Lockspace membership is the set of cluster members (SetCluster) that have
// said, in unsequenced hello messages, that they joined the lockspace. Every
// change of that view stops locking and runs recovery, coordinated by the
// lowest member:
//
//  1. Each member broadcasts its status: its view, quorum, and failed
//     members with how many of their failures it knows to be fenced
//     (confirmations are shared this way). A member that left cleanly needs
//     no fencing; one that vanished from the cluster, or came back with a new
//     incarnation, does.
//  2. When every member reports the same view, quorum, and every failure
//     fenced, the coordinator starts generation g.
//  3. All to all: each member tells each directory node (over the new view)
//     the names it masters and the names it holds locks on; directory nodes
//     keep surviving masters and pick a new master (the lowest reporter) for
//     resources whose master is gone, and answer every reporter.
//  4. All to all: each member settles its operations that were in flight to
//     a departed master (by the kernel's recover_waiters rules) and sends its
//     locks on remastered resources to their new masters.
//  5. With every member's locks in, each master purges departed nodes'
//     locks, rebuilds remastered resources (recover_conversion,
//     recover_lvb), enables locking, regrants, replays held messages and
//     resends operations whose master died.
//
// Survivors keep their granted locks and lock ids and receive no callbacks
// for them. A membership change during recovery restarts it.
package engine
