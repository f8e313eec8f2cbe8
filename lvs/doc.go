// Package lvs is replicad's virtual-IP and layer-4 load-balancing subsystem:
// it owns virtual IP addresses (netlink, gratuitous ARP / unsolicited
// neighbour advertisements, a presence and link monitor, the LVS-DR
// real-server helper) and keeps the kernel's load-balancing tables equal to
// the configured virtual services, with per-real-server health checks.
//
// Contract:
//   - Desired state comes from Config (and, at runtime, the Manager's add,
//     update and delete calls). Manager.Reconcile observes the kernel, plans
//     (lvs/plan) and applies only the difference: re-applying an unchanged
//     state writes nothing, a restart neither flushes the tables nor breaks
//     established connections, and kernel state replicad did not create is
//     left alone (foreign IPVS services; any nftables table but its own).
//   - Two backends sit behind the Backend interface: IPVS through
//     github.com/cloudflare/ipvs, and nftables through
//     github.com/google/nftables for kernels without ip_vs. The choice is
//     automatic (logged with its reason) unless the config names one; a
//     service a backend cannot express is refused with an error naming the
//     backends that can (model.UnsupportedError).
//   - Health checks (tcp, http, https, mysql, nfs, exec) feed the pure
//     lvs/health core; a Down server is quiesced or removed, and a sorry
//     server takes over when nothing is left.
//   - VIP ownership is decided by the caller (the cluster manager), never
//     by this package: VIP.Acquire and VIP.Release do what they are told.
//
// Pure parts live in sub-packages: lvs/model (vocabulary, capabilities),
// lvs/plan (reconcile planner), lvs/nftrules (nftables rule generation),
// lvs/sched (reference scheduler semantics), lvs/health (check scheduling,
// rise/fall, failure policy) and lvs/wire (MySQL and ONC RPC codecs). This
// package holds the I/O around them.
//
// Goroutines: a started Manager runs one health loop, one reconcile loop
// and one goroutine per running check; Close cancels and waits for all of
// them. A VIP runs at most one announcement goroutine (Release and Close
// wait for it). VIP.Watch blocks its caller. See docs/lvs.md.
//
// Network namespaces: every constructor takes an optional namespace path
// (a file under /var/run/netns); kernel state, sockets, checks and exec'd
// commands then live in that namespace. Tests use this to run directors and
// real servers side by side.
package lvs
