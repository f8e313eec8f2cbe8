package control

import "github.com/replicad/replicad/lvs"

// The load balancer's endpoints (docs/lvs.md) carry lvs.ServiceConfig,
// lvs.RealServerConfig and lvs.Status as they marshal themselves
// (configuration with the config file's keys); these wrap the rest.

// LVSStatus is GET /v1/lvs: the manager's status and whether the running
// configuration still equals the config file's lvs section.
type LVSStatus struct {
	lvs.Status
	// DiffersFromConfigFile is true after runtime edits that the config
	// file does not have: a restart would undo them.
	DiffersFromConfigFile bool `json:"differs_from_config_file"`
}

// LVSConfigDocument carries the lvs section in the config file's YAML
// (GET and PUT /v1/lvs/config).
type LVSConfigDocument struct {
	YAML string `json:"yaml"`
}

// LVSReconcileResult is POST /v1/lvs/reconcile: the changes applied.
type LVSReconcileResult struct {
	Ops []string `json:"ops"`
}

// LVSVIPState is one VIP in GET /v1/lvs/vips.
type LVSVIPState struct {
	Address   string `json:"address"`
	Interface string `json:"interface"`
	lvs.VIPState
}
