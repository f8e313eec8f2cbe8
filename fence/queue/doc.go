// Package queue serialises fence operations per target and merges
// concurrent requests.
//
// At most one operation runs per target. A request joins the last operation
// in its target's line (running or waiting) when that operation has the same
// action, and gets its result, as Pacemaker merges identical in-flight
// requests. (A request that joins a running operation late may be answered
// by an off that happened shortly before it asked; the node was still down
// for it.) Otherwise the request starts a new operation at the end of the
// line, so operations for one target run in request order and a request is
// never answered by an operation that precedes one it followed (an "off"
// never merges past a queued "on").
//
// The package is pure bookkeeping with no goroutines or clocks; package fence
// drives it under its own lock.
package queue
