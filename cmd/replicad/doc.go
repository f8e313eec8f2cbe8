// Command replicad runs a replicad node: it owns the configured volumes,
// serves them over NBD and answers repctl on the control socket.
//
//	replicad run --config /etc/replicad/replicad.yaml
//	replicad demo [--dir DIR]
//
// Configuration comes from the YAML file, overridden by REPLICAD_* environment
// variables (REPLICAD_NBD_MAX_PAYLOAD=16MiB sets nbd.max-payload), overridden
// by flags. Unknown keys are errors. The fence section is decoded by
// fence.Decode (device defaults, durations with units).
package main
