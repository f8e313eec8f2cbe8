// Package fence makes sure a lost node is down before the cluster recovers
// anything it held. Replication's fence-peer step, the DLM's recovery and
// the cluster manager all go through a *Fencer:
//
//	f, err := fence.New(ctx, cfg, fence.Options{Clock: clk, Logger: log})
//	res, err := f.Fence(ctx, fence.Request{Target: "node-b", Action: fence.ActionOff,
//		Origin: "node-a/crm", Reason: "node-b missed 5 heartbeats"})
//
// Fence returns nil only when the node was fenced: for off and reboot that
// means an agent switched it off and a status call then reported it off
// (off means verified off; a timeout is a failure), or an operator
// confirmed it down with Confirm.
//
// Devices are fence-agents programs run by ExecAgent (fence_ipmilan,
// fence_redfish, fence_virsh, ... through their stdin protocol) or the
// native RedfishAgent. Each exec agent's metadata is read and checked
// against its configured parameters when the Fencer starts. A target's
// levels are tried in order; every device of a level must succeed.
// Operations are serialised per target and concurrent requests for the
// same action merge (package queue); the steps of one operation (delays,
// retries, verification) are decided by package plan; every operation is
// recorded in an append-only history file whose torn last record, after a
// crash, is skipped (package journal).
//
// FencePeer adapts the Fencer to DRBD's fence-peer contract (exit codes
// 3..7) for replication; ParsePeerEnv reads a handler's environment.
// docs/fencing.md describes the configuration, the API and the control-API
// endpoints that the daemon exposes for `repctl fence`.
//
// Goroutines: Fence starts one goroutine per operation (run), which
// starts the next queued operation of its target when it ends; Close
// cancels them and waits. Agent calls run in the operation's goroutine;
// exec agents are child processes in their own process group, killed when
// the call's timeout (on the injected clock) passes. Locks: Fencer.mu
// guards the queue and live operations and is never held across I/O; the
// history has its own lock, held across its append so that records reach
// the file in order, and never taken under Fencer.mu.
package fence
