// Command dlm-bench measures replicad's distributed lock manager (dlm/)
// against the goals of issue 4, in one run, with the real Node, lockspace
// API and authenticated TCP transport; every node lives in this process and
// talks to the others over 127.0.0.1.
//
//   - local: one goroutine takes EX and unlocks it again (Lockspace.Lock,
//     Lock.Unlock, each waiting for its completion) on one resource of a
//     single-node lockspace, for -duration per round: lock+unlock pairs per
//     second. A second figure keeps -inflight such pairs going at once with
//     the asynchronous calls (one resource each, the next call made from
//     the completion callback).
//   - remote acquire: two nodes; node 1 masters the resource (it holds an
//     NL lock on it), node 2 takes EX and unlocks, -samples times per round;
//     the time of the acquire (Lock call to granted) only. Two cases: node 2
//     has no lock on the resource and its directory node is node 1 (a lookup
//     and a request: two round trips), and node 2 holds an NL lock of its
//     own so the master is known (a request only). In the same rounds, the
//     round-trip time of a ping-pong of DLM-request-sized frames over one
//     loopback TCP connection; latencies are also given in those RTTs.
//     Then -hops acquires of each case on a separate pair of nodes whose
//     connections note the time of every read and write: how many acquires
//     had a gap of 30 µs or more between consecutive socket events (a
//     stall), and the median latency with and without one.
//   - ping-pong: two nodes, one client each, each holding an NL lock on one
//     resource: convert to EX, wait for the grant, hold it until a blocking
//     callback says the other wants it, convert to NL, ask for EX again.
//     Handovers (a grant to the other client than the previous one) per
//     second.
//   - recovery: three nodes, -locks locks on -locks/2 resources (resource i
//     is first locked PR by node i%3+1, which masters it, then PR by the
//     next node). Node 1 also holds EX on "probe" and node 2 waits for PR on
//     it. Node 1 is closed (it dies: no leave); once both survivors wait for
//     fencing, node 2 is given the fence confirmation. Measured from the
//     confirmation: each survivor's lockspace running again (Status polled
//     every millisecond), node 2's waiting request granted, and a new PR
//     request from node 3, made right after the confirmation returns, on a
//     resource node 1 mastered, granted.
//
// Medians over -rounds rounds (-recovery-rounds for recovery, each on a new
// cluster) and every round are printed, with the goals: at least 500,000
// local lock+unlock pairs per second, a remote acquire within 2 RTT + 50 µs,
// recovery of 100,000 locks within 2 s of the fence confirmation.
//
// Run from the repository: go run ./bench/dlm [-rounds 5] [-duration 2s]
// [-samples 2000] [-hops 2000] [-locks 100000] [-recovery-rounds 3]
// [-only local,remote,pingpong,recovery] [-cpuprofile FILE]. No root, no
// external tools.
package main
