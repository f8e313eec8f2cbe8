// Command repctl manages a replicad node through its control socket.
//
//	repctl status [--json]
//	repctl create-md [--force] VOLUME
//	repctl up VOLUME|--all
//	repctl down VOLUME|--all
//
// The socket is --socket, else $REPLICAD_SOCKET, else
// /run/replicad/control.sock. Output is for people by default and JSON with
// --json.
package main
