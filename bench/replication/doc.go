// Command replication-bench measures replicad's replication against the
// same volume unreplicated, in one run, and prints ratios.
//
// It starts, on 127.0.0.1, one standalone replicad (volume "bench", no
// peers) and two replicated pairs (protocol C and protocol A), each node
// its own `replicad run` process with its volume on a sparse file of
// -size in -dir. Then:
//
//   - the CPU time of one random 4 KiB buffered pwrite into a file in
//     -dir (-only pwrite), what each node pays per replicated write, for
//     three page-cache histories: on ext4 it grows with the size of the
//     folio the write lands in (4 KiB folios, 1 MiB folios, readahead's).
//   - fio's nbd engine against each primary and the standalone volume:
//     4k random write QD32 and 1 MiB sequential write QD8 on a 1 GiB span
//     filled once beforehand and then written back and dropped from the
//     page cache on every node, so that every setup starts from the same
//     cache (the pairs' initial sync would otherwise leave the primaries'
//     files in readahead's large folios, and each fill's folios would
//     depend on the dirty data the others left); -rounds rounds, the
//     setups' order rotating every round; medians and ratios to the standalone volume, the CPU
//     time per operation of replicad (all nodes) and of fio, and the ratio
//     those CPU times allow when everything shares the CPUs.
//   - full resync: the protocol C pair's secondary gets new metadata (an
//     empty replica) and the time until it is in sync gives the resync rate,
//     against a loopback TCP stream measured in the same run (tcpProbe).
//   - scattered resync: the protocol C primary disconnects, takes
//     -scattered random 4 KiB writes, reconnects; bytes sent by the resync
//     (traffic counters) against the dirty bytes, and the time.
//
// With -pin every node runs on a CPU of its own, as on separate machines:
// the primary (or the standalone node) and fio on CPU 0, the secondary on
// CPU 1 (taskset), and the TCP probe's writer and reader likewise; the
// CPU-time bound is then the busier CPU's. -w picks the workloads ("4k",
// "1M"); -cpuprofile DIR writes a CPU profile of every replicad.
//
// With -sched-batch every replicad runs under SCHED_BATCH (chrt --batch,
// no root needed): its wakeups no longer preempt fio, which shares its
// CPU. fio then submits a run of requests before replicad serves them all
// at once, instead of replicad waking for each request as it comes; see
// docs/benchmarks.md for what that changes. The default measures the
// default scheduling.
//
// Run from the repository: go run ./bench/replication [-rounds 5] [-runtime 10s] [-pin]
// It needs fio (Debian package fio), taskset and chrt (util-linux) for -pin
// and -sched-batch, and Go;
// no root.
package main
