// Package sched is the executable specification of what each scheduler
// means: a plain-Go reference implementation of every IPVS scheduling
// algorithm replicad exposes (rr, wrr, lc, wlc, sed, nq, sh, dh, lblc,
// lblcr, mh) and of the nftables-only weighted random.
//
// The formulas follow the kernel's net/netfilter/ipvs/ip_vs_*.c: a server's
// overhead is activeconns*256 + inactconns; weight 0 means "no new
// connections"; ties go to the earlier server in the list. Hashes are not the
// kernel's (jhash/siphash with a random seed) but any fixed hash has the same
// observable contract: the same input always picks the same server while the
// server set is unchanged.
//
// The package has two users. Tests use it as the reference the backends are
// checked against ("rr alternates exactly", "wrr interleaves like IPVS").
// The nftables rule generator uses WRRSequence to lay out its weighted map so
// that numgen inc reproduces IPVS's wrr order.
//
// Not modelled: time-based expiry of lblc/lblcr entries and persistence
// (which live in the backends), and the overload flag of upper/lower
// connection thresholds.
package sched
