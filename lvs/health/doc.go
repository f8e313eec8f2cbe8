// Package health is the pure core of replicad's real-server health checks:
// a Tracker that decides when each check is due, times checks out, and runs
// the rise/fall state machine on their results; and Effective, which turns a
// configured service plus health states into the service the kernel should
// hold (failed servers quiesced at weight 0 or removed, the sorry server
// when nothing is left).
//
// The Tracker has no goroutines and no clock: callers pass the time into
// Tick and Result, and sleep until NextWake themselves (the lvs package
// does, with an injected internal/clock.Clock). The probes that produce
// results (TCP, HTTP, MySQL, NFS, exec) live in the lvs package.
//
// Timing contract: a check starts every Interval (checks never overlap
// because Timeout <= Interval); a result that has not arrived Timeout after
// its start counts as a failure. So a server that stops answering is marked
// down at most Fall*Interval + Timeout after it stopped, and one that comes
// back is marked up at most Rise*Interval + Timeout after.
package health
