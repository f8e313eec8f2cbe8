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
//	  chain dispatch    per service: ip daddr VIP meta l4proto tcp th dport P jump svc_…
//	                    (firewall-mark services: meta mark M jump svc_…)
//	  chain svc_…       counter comment "replicad svc key=… sched=… persist=… prefix=…"
//	                    [persistence hit:   ip saddr & mask map @svc_…_persist vmap {id: goto rs}]
//	                    [persistence stale: delete @svc_…_persist {ip saddr & mask}]
//	                    pick: numgen inc|random mod N / jhash ip saddr|daddr mod N vmap {slot: goto rs}
//	  chain svc_…_rs_…  [update @svc_…_persist {ip saddr & mask : id}]
//	                    meta l4proto tcp counter dnat ip to RIP:RPORT comment "replicad rs addr=… weight=… fwd=nat"
//	  map svc_…_persist type ipv4_addr : mark; flags timeout,dynamic; timeout T
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
//   - persistence: a timed map from the masked client address to the real
//     server's id, refreshed on every new connection; an entry pointing at a
//     server that is gone or quiesced is deleted and the client rescheduled.
//
// Weighted slot tables are capped at MaxSlots entries; larger weight sums
// are scaled down proportionally (each server keeps at least one slot).
package nftrules
