// Package agentproto speaks the ClusterLabs fence-agents API: the key=value
// lines a fence agent reads on stdin, the exit codes it returns, the output of
// its list action, and the XML it prints for the metadata action.
//
// The contract is fence-agents' doc/FenceAgentAPI.md and lib/fencing.py:
// one "name=value" per line, "#" starts a comment, the last value of a name
// wins, and an agent treats "-" and "_" in names alike. Exit code 0 is
// success; status returns 0 for on and 2 for off; other codes are failures
// (library codes 2..12 name the reason).
//
// Everything here is pure: bytes in, values or errors out. Running agents is
// the job of package fence. ParseArgs and ParseMetadata take untrusted bytes
// and are fuzzed.
package agentproto
