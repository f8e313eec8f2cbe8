// Package freeport picks TCP ports on 127.0.0.1 for processes that are
// told their port in a configuration file and bind it a moment later: the
// demo's nodes, the integration tests' clusters, the benchmarks.
//
// A port from a listen on port 0 lies in the kernel's ephemeral range, and
// is free only until the next outgoing connection on the machine picks it;
// with a test suite's clients running in parallel that happened between
// the pick and the bind. Ports below that range are not handed out to
// outgoing connections, so Loopback picks there first.
package freeport
