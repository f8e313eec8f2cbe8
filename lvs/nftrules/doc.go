// Package nftrules generates the nftables objects that implement replicad's
// virtual services on kernels without ip_vs, decodes them back into the
// model, and orders the changes a plan needs into one atomic batch. It does
// no I/O: the lvs package replays a Batch onto a github.com/google/nftables
// connection.
//
// Everything lives in one table replicad owns (inet family, default name
// "replicad_lvs"); nothing outside it is read or written.
//
//	table inet replicad_lvs
//	  chain prerouting  type nat hook prerouting priority dstnat: jump dispatch
//	  chain output      type nat hook output priority dstnat:     jump dispatch
//	  chain dispatch    per service: ip daddr VIP tcp dport P jump svc_…
//	                    (firewall-mark services: meta mark M jump svc_…)
//	  chain svc_…       counter comment "replicad svc key=… sched=… persist=… prefix=…"
//	                    [per active real server: ip saddr & mask @svc_…_rs_…_persist goto svc_…_rs_…]
//	                    numgen inc|random mod N / jhash ip saddr|daddr mod N vmap @svc_…_pick
//	  map svc_…_pick    integer : verdict; slot -> goto svc_…_rs_…
//	  chain svc_…_rs_…  [update @svc_…_rs_…_persist { ip saddr & mask }]
//	                    meta l4proto tcp counter dnat ip to RIP:RPORT comment "replicad rs addr=… weight=… fwd=nat"
//	  set svc_…_rs_…_persist  ipv4_addr; flags dynamic,timeout; timeout T
//
// Every rule reading an address starts with meta nfproto, so `nft list`
// prints what it means; the kernel needs nothing of the sort after dispatch.
//
// Scheduler semantics on this backend (the NAT chains only see the first
// packet of each connection, so every decision is per connection and
// conntrack carries it afterwards):
//   - rr: numgen inc mod N over the servers with weight > 0: exact rotation.
//   - wrr: numgen inc mod P over one period of IPVS's wrr order
//     (sched.WRRSequence): the same interleaving IPVS produces.
//   - random: numgen random mod P over the same weighted slots.
//   - sh / dh: jhash of the source / destination address (fixed seed, so a
//     restart keeps the mapping) mod P over the weighted slots.
//   - persistence: each real server has a timed set of the (masked) client
//     addresses it serves, refreshed by every new connection it gets; the
//     service chain sends a remembered client back to its server if that
//     server is active. A quiesced server's set is flushed (and its clients
//     rescheduled), unlike IPVS, which keeps persistent clients on a
//     quiesced server until their template expires.
//
// Weighted slot tables are capped at MaxSlots entries; larger weight sums
// are scaled down proportionally (each server keeps at least one slot).
package nftrules
