// Package lvstest builds the network-namespace testbed of the lvs
// integration tests and the LVS benchmark: namespaces named PREFIX-*, veth
// pairs into bridges, directors that forward, real servers behind a
// gateway VIP, and small TCP and HTTP servers that answer with their name.
//
// It needs root and iproute2 (Available says why not). It only creates
// namespaces and talks only to addresses inside them; Close deletes them.
//
// MemBackend, an in-memory table with lvs.Backend's methods, needs
// neither: it lets the daemon's and repctl's tests run a real Manager.
package lvstest
