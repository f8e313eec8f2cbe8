// Package dlmsim is a deterministic in-memory cluster of DLM engines for
// tests: a network that delays, reorders, duplicates and drops envelopes,
// a membership oracle that tells each node about crashes at its own pace,
// fence confirmations, crashes, restarts, clean leaves and rejoins, and a
// model of every lock's expected completions.
//
// Check verifies, after any step, the safety properties of the DLM:
//
//   - on every master, the granted and converting locks of a resource have
//     pairwise compatible granted modes;
//   - across the cluster, the modes the holders are entitled to use (their
//     process copies, plus the locks of crashed nodes whose fencing has not
//     been confirmed) are pairwise compatible per resource;
//   - every operation gets exactly one completion, and no lock gets a
//     completion it did not ask for (so survivors' locks see no callbacks
//     from recovery);
//
// and CheckQuiescent, once Settle has drained the network, that all nodes
// run the same generation and that every holder's granted lock is on its
// master with the same id and mode (survivors kept their locks).
//
// Everything is driven by one *rand.Rand, so a seed replays a run exactly.
package dlmsim
