// Package plan decides, step by step, how one fence operation runs: which
// level and device to try, delays, retries, and the verification that "off"
// really is off.
//
// Run is deterministic: it talks to the world only through Env (the time, a
// wait, a power call and a status call), so the same Env answers give the
// same steps. Package fence implements Env with real agents and the injected
// clock; the tests implement it with simulated devices and a virtual clock.
//
// The rules Run follows:
//
//   - Levels are tried in order; a level succeeds only if every device in it
//     succeeds. The first level that succeeds ends the operation; the
//     operation fails when every level failed.
//   - Off means verified off: after a device's off call succeeds, Run polls
//     its status every VerifyInterval until it reports off. If it has not
//     within VerifyTimeout, that attempt failed. An agent timeout is a
//     failure like any other.
//   - A failed attempt (power call or verification) is retried up to
//     Retries more times, RetryInterval apart; then the device has failed
//     and with it the level.
//   - Reboot is off (verified) on every device of the level, then on for
//     every device. As in fence-agents, a reboot whose off half succeeded
//     has fenced the node; a failed on half is a warning, not a failure.
//   - On powers every device of the level on (no verification): unfencing.
//   - Delays: PriorityDelay is waited once before anything else (the caller
//     sets it when the target holds a primary, so that in a two-node fence
//     race the primary's holder shoots first). Each device's Delay (a base
//     plus a random part, see RandomDelay) is waited before its first power
//     call in the operation, never before retries or status calls.
package plan
