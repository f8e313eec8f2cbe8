// Command lvs-bench measures replicad's nftables load balancer against the
// same real server reached directly, in one run, and prints the ratios.
//
// It builds the lvstest namespace testbed (client, director, one real
// server; names rpdlvs-bPID-*), starts an lvs.Manager with the nftables
// backend in the director with one rr service on the VIP whose only real
// server is the one the direct path talks to, and alternates rounds:
//
//   - connections/s: -workers concurrent clients each open a connection,
//     read one byte the server writes, and wait for the server's close;
//   - throughput: one TCP stream reading what the server writes as fast as
//     it can.
//
// "direct" connects to the real server's own address; the packets still
// cross the director as a router (the only path in this topology), so the
// ratio isolates the cost of the load balancer (DNAT rules, the pick map)
// rather than of an extra hop. Both paths go through the director's
// conntrack, which the NAT table turns on for every flow.
//
// Run as root: go run ./bench/lvs [-rounds 5] [-duration 2s] [-workers 4]
package main
