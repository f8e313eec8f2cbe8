package control

import "github.com/replicad/replicad/dlm/engine"

// The DLM's control-API types (docs/dlm.md, "Control API"). Lockspace
// status and dumps are the engine's own types: engine.Status, engine.Dump.

// DLM answers GET /v1/dlm: this node's DLM, the cluster as the DLM sees
// it, and its lockspaces.
type DLM struct {
	Node   string `json:"node"`
	NodeID uint32 `json:"node_id"`
	// Listen is the peer listener's address; Socket the local client
	// socket (repctl lock take/run and programs using dlm/client).
	Listen     string          `json:"listen"`
	Socket     string          `json:"socket"`
	Quorate    bool            `json:"quorate"`
	Nodes      []DLMNode       `json:"nodes"`
	Lockspaces []engine.Status `json:"lockspaces"`
}

// DLMNode is one configured node as this node's DLM sees it: its
// membership merged with the failures and fences learned from peers.
type DLMNode struct {
	Name string `json:"name"`
	ID   uint32 `json:"id"`
	// Address is its DLM peer endpoint.
	Address string `json:"address"`
	// State is "self", "alive", "failed" (needs fencing), "fenced"
	// (down, fenced) or "unknown" (not seen since this node started:
	// startup fencing needs it seen alive or fenced).
	State string `json:"state"`
	// NeedsFence is set while locks it may have held wait for a fence
	// confirmation.
	NeedsFence bool `json:"needs_fence"`
	// FailedIncarnation and FencedIncarnation are the highest process
	// incarnations known failed and fenced (start times in ns).
	FailedIncarnation uint64 `json:"failed_incarnation,omitempty"`
	FencedIncarnation uint64 `json:"fenced_incarnation,omitempty"`
}

// JoinRequest is the body of POST /v1/dlm/lockspaces.
type JoinRequest struct {
	Name string `json:"name"`
	// LVBLen is 32 (0 means 32) or 64, the same on every node.
	LVBLen int `json:"lvb_len"`
}

// FenceConfirmRequest is the body of POST /v1/dlm/fence-confirm.
type FenceConfirmRequest struct {
	// Node is a node name from cluster.nodes, or its id.
	Node string `json:"node"`
}

// Empty is the answer of endpoints with nothing to say ({}).
type Empty struct{}

// DLM error codes, in the Error body's "code".
const (
	CodeDLMNotConfigured = "dlm_not_configured"
	CodeDLMNotRunning    = "dlm_not_running"
	CodeNotJoined        = "not_joined"
	CodeLockspaceBusy    = "busy"
	CodeNotFailed        = "not_failed"
	CodeUnknownNode      = "unknown_node"
)
