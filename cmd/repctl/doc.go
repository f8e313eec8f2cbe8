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
//	repctl lock ls | dump LOCKSPACE | join LOCKSPACE | leave LOCKSPACE
//	repctl lock take|release --lockspace L --resource R --mode M
//	repctl lock convert --lockspace L --resource R --from M --to M
//	repctl lock run --lockspace L --resource R --mode M [--] COMMAND...
//	repctl lock fence-confirm NODE [--yes]
//
// The socket is --socket, else $REPLICAD_SOCKET, else
// /run/replicad/control.sock. Output is for people by default and JSON with
// --json. Exit status: 0 ok, 1 failed, 2 usage, 3 replicad not running;
// fence peer exits with DRBD's fence-peer codes instead (1 for any failure);
// lock commands exit 4 when a lock was not acquired, and lock run with its
// command's status.
package main
