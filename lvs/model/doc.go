// Package model is the vocabulary of replicad's load balancer: virtual
// services, real servers, schedulers, forwarding methods, the kernel state a
// backend observes, and which backend can do what.
//
// It is pure data and pure functions: no sockets, files, goroutines or clock.
// Everything else under lvs/ (the planner, the nftables rule generator, the
// backends, the manager) speaks in these types, so a Service means the same
// thing whether it ends up in IPVS or in nftables.
//
// Identity: a virtual service is identified by its Key (protocol, address and
// port, or firewall mark and family); a real server within a service by its
// address and port. Everything else is an attribute that can be updated in
// place.
package model
