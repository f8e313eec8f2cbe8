// Package locktable is the pure core of replicad's distributed lock manager:
// the lock modes, the VMS compatibility matrix, the flags and status bits of
// the Linux kernel DLM, and the master copy of every lock on a resource with
// its granted, converting and waiting queues.
//
// A Table holds the resources one node masters. Request, Convert, Unlock and
// Cancel apply the kernel's rules (fs/dlm/lock.c: _can_be_granted,
// can_be_granted, conversion_deadlock_detect, grant_pending_locks,
// send_blocking_asts, set_lvb_lock/set_lvb_unlock) and return a Reply for the
// lock that asked plus the Events the operation caused for other locks:
// asynchronous grants and blocking callbacks (BASTs), in the order the kernel
// queues them. The table never calls user code and holds no goroutines,
// sockets or clocks, so it can be driven step by step and tested
// exhaustively. Recovery helpers (Purge, AddRecovered, FinishRecovery,
// GrantRecovered) implement the kernel's purge, remaster, conversion and LVB
// recovery rules (fs/dlm/recover.c).
//
// CallbackFilter is the holder-side half of the callback rules (fs/dlm/ast.c):
// it drops stale and repeated blocking callbacks before they reach the user.
//
// Deliberate differences from the kernel are named where they occur; the
// only ones are the order of the granted queue (strictly by granted mode,
// highest first, which is what the kernel's insertion intends) and that a
// table rejects malformed calls with an error instead of logging them.
package locktable
