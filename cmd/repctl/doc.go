// Command repctl manages a replicad node through its control socket.
//
//	repctl status [--json]
//	repctl create-md [--force] VOLUME
//	repctl up VOLUME|--all
//	repctl down VOLUME|--all
//	repctl fence list
//	repctl fence test DEVICE
//	repctl fence node NODE --reason TEXT [--action off|reboot|on] [--primary]
//	repctl fence history [NODE] [--since 1h|RFC3339] [--limit N] [-v]
//	repctl fence confirm NODE --reason TEXT [--yes]
//	repctl fence peer    (fence-peer handler: environment in, DRBD exit code out)
//	repctl lvs list [SERVICE]
//	repctl lvs add-service NAME --address VIP:PORT [--rs ADDR[,weight=W] ...] [flags]
//	repctl lvs edit-service NAME [flags] / delete-service NAME
//	repctl lvs add-rs SERVICE ADDR [flags] / edit-rs SERVICE ADDR [flags] / delete-rs SERVICE ADDR
//	repctl lvs save [-o FILE] / restore FILE|- / reconcile / vips
//
// The socket is --socket, else $REPLICAD_SOCKET, else
// /run/replicad/control.sock. Output is for people by default and JSON with
// --json. Exit status: 0 ok, 1 failed, 2 usage, 3 replicad not running;
// fence peer exits with DRBD's fence-peer codes instead (1 for any failure).
package main
