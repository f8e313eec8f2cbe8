// Package control is the control API between repctl and replicad: JSON over
// HTTP on a unix socket. It holds the wire types, the client repctl uses,
// and the small handler helpers the daemon registers endpoints with.
//
// Every error response is {"error": "...", "hint": "..."} with an HTTP
// status that classifies it (404 unknown volume, 409 wrong state, 400 bad
// request, 500 failure). Subsystems with finer classes add "code" (fence:
// "unknown_target", "fence_failed", ...) and, for an operation that failed
// after doing something, "detail" (what it did). The client turns a missing or refused socket into
// ErrNotRunning so the CLI can say how to start the daemon.
package control
