// Package daemon wires replicad together: it owns the configured volumes
// (create-md, up, down), serves them over NBD, runs the Fencer when the
// config has a fence section (the /v1/fence endpoints, fence.go), runs the
// load balancer when it has an lvs section (the /v1/lvs endpoints, lvs.go;
// runtime edits change only the running configuration, and shutdown leaves
// the kernel's tables in place), its DLM node when dlm.enabled is set (the
// /v1/dlm endpoints and the DLM's local socket, dlm.go; fence results are
// passed to its membership), answers
// the control API on a unix socket and exports Prometheus metrics.
// cmd/replicad reads the config file, environment and flags into a Config
// and runs a Daemon; nothing in here reads them itself.
//
// Goroutines (see docs/threads.md): one per NBD listener (accept loop) and
// per NBD connection (owned by nbd.Server); one HTTP server each for the
// control socket and the metrics endpoint; one per running fence operation
// (owned by fence.Fencer); the lvs.Manager's health and reconcile loops and
// running checks (owned by it); the DLM node's goroutines (owned by
// dlm.Node, docs/dlm.md) and one serving its local socket. Run starts them
// and, when its context ends, stops the listeners, closes NBD connections
// (requests in flight finish), detaches every volume cleanly, stops the DLM
// (local clients disconnected, lockspaces left), closes the Fencer last and
// waits for all of them.
package daemon
