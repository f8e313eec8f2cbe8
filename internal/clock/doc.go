// Package clock injects time into replicad's subsystems.
//
// Cores never call time.Now or time.Sleep; they take a Clock. Production code
// passes Real(); tests pass a *Fake and move it with Advance, which fires every
// timer whose deadline has passed, in deadline order, before it returns.
package clock
