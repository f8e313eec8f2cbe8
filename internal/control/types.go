package control

import (
	"encoding/json"
	"time"
)

// DefaultSocket is where replicad listens unless configured otherwise.
const DefaultSocket = "/run/replicad/control.sock"

// SocketEnv names the environment variable repctl reads for the socket.
const SocketEnv = "REPLICAD_SOCKET"

// Node identifies the daemon.
type Node struct {
	Name    string    `json:"name"`
	ID      uint32    `json:"id"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
}

// Volume states as the daemon sees them.
const (
	StateUp           = "up"
	StateDown         = "down"
	StateUnconfigured = "unconfigured" // no metadata yet
	StateError        = "error"
)

// Peer is a replication peer of a volume.
type Peer struct {
	Node           string  `json:"node"`
	NodeID         int32   `json:"node_id"`
	Connection     string  `json:"connection"`
	Replication    string  `json:"replication"`
	Role           string  `json:"role"`
	Disk           string  `json:"disk"`
	OutOfSyncBytes int64   `json:"out_of_sync_bytes"`
	Resync         *Resync `json:"resync,omitempty"`
	// Verify is a running online verify; LastVerify the last finished one.
	Verify     *Verify       `json:"verify,omitempty"`
	LastVerify *VerifyResult `json:"last_verify,omitempty"`
	// LastError says why the peer last disconnected or could not connect,
	// until it connects again; LastDisconnect keeps the reason after that.
	LastError      string `json:"last_error,omitempty"`
	LastDisconnect string `json:"last_disconnect,omitempty"`
	// Fencing: the fence-peer handler is running for it. Outdated: its data
	// is known outdated (fenced), so this node may be primary without it.
	Fencing  bool `json:"fencing,omitempty"`
	Outdated bool `json:"outdated,omitempty"`
	// InItsSyncSet: the peer is primary and counts this node as in sync
	// with it, which makes this node a safe failover target.
	InItsSyncSet bool `json:"in_its_sync_set,omitempty"`
	// SentBytes and ReceivedBytes count the link's traffic since the volume
	// came up, by message kind: write, resync, other.
	SentBytes     map[string]int64 `json:"sent_bytes,omitempty"`
	ReceivedBytes map[string]int64 `json:"received_bytes,omitempty"`
}

// Resync is a running resync's progress.
type Resync struct {
	TotalBytes  int64   `json:"total_bytes"`
	DoneBytes   int64   `json:"done_bytes"`
	Percent     float64 `json:"percent"`
	BytesPerSec float64 `json:"bytes_per_sec"`
	// ETASeconds is -1 when the rate is not known yet.
	ETASeconds float64 `json:"eta_seconds"`
}

// Verify is a running online verify's progress.
type Verify struct {
	TotalBytes int64   `json:"total_bytes"`
	DoneBytes  int64   `json:"done_bytes"`
	Percent    float64 `json:"percent"`
}

// VerifyResult is a finished online verify.
type VerifyResult struct {
	CheckedBytes int64 `json:"checked_bytes"`
	// Differences is the number of blocks that differed; they are marked
	// out of sync and resynced.
	Differences int64 `json:"differences"`
}

// VerifyRequest is the body of POST /v1/volumes/{name}/verify; an empty
// Peer means the only peer.
type VerifyRequest struct {
	Peer string `json:"peer"`
}

// PrimaryRequest is the body of POST /v1/volumes/{name}/primary.
type PrimaryRequest struct {
	Force bool `json:"force"`
}

// ConnectRequest is the body of POST /v1/volumes/{name}/connect and
// /disconnect. An empty Peer means every peer.
type ConnectRequest struct {
	Peer          string `json:"peer"`
	DiscardMyData bool   `json:"discard_my_data"`
}

// Event is one state change, as streamed by GET /v1/events.
type Event struct {
	Time   time.Time `json:"time"`
	Volume string    `json:"volume"`
	Peer   string    `json:"peer,omitempty"`
	What   string    `json:"what"`
	Old    string    `json:"old"`
	New    string    `json:"new"`
	Reason string    `json:"reason,omitempty"`
}

// Volume is one volume's status.
type Volume struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// Error explains State "error" or "unconfigured"; Hint says what to do.
	Error string `json:"error,omitempty"`
	Hint  string `json:"hint,omitempty"`

	Role string `json:"role,omitempty"`
	Disk string `json:"disk,omitempty"`
	// Suspended: I/O is frozen until fencing of a lost peer settles
	// (fencing resource-and-stonith; repctl resume-io overrides), or
	// until quorum returns (on-no-quorum suspend-io).
	Suspended bool `json:"suspended,omitempty"`
	// Quorum, with quorum configured: "yes", or "lost" when the node
	// reaches at most half of the volume's nodes; Reachable counts them
	// (this node included) out of Nodes.
	Quorum    string `json:"quorum,omitempty"`
	Reachable int    `json:"reachable_nodes,omitempty"`
	Nodes     int    `json:"nodes,omitempty"`
	// SuspendedFencing: the suspension is for fencing.
	SuspendedFencing bool     `json:"suspended_fencing,omitempty"`
	DiskError        string   `json:"disk_error,omitempty"`
	Size             int64    `json:"size,omitempty"`
	Device           string   `json:"device"`
	Meta             string   `json:"meta"`
	ReadOnly         bool     `json:"read_only,omitempty"`
	CurrentUUID      string   `json:"current_uuid,omitempty"`
	Flags            []string `json:"flags,omitempty"`
	ALExtents        int      `json:"al_extents_active,omitempty"`

	Connections int      `json:"nbd_connections"`
	Exports     []string `json:"exports,omitempty"`
	Peers       []Peer   `json:"peers"`
}

// Status is the answer to GET /v1/status.
type Status struct {
	Node    Node     `json:"node"`
	Volumes []Volume `json:"volumes"`
}

// CreateMDRequest is the body of POST /v1/volumes/{name}/create-md.
type CreateMDRequest struct {
	Force bool `json:"force"`
}

// CreateMDResponse describes the metadata written.
type CreateMDResponse struct {
	Volume       string `json:"volume"`
	DataSize     int64  `json:"data_size"`
	MetaSize     int64  `json:"meta_size"`
	Internal     bool   `json:"internal"`
	Disk         string `json:"disk"`
	MaxPeers     int    `json:"max_peers"`
	ALExtents    uint32 `json:"al_extents"`
	BitmapGranul uint32 `json:"bitmap_granularity"`
}

// Error is the body of every error response.
type Error struct {
	Message string `json:"error"`
	Hint    string `json:"hint,omitempty"`
	// Code classifies the error for scripts where a subsystem has codes
	// (fence: "unknown_target", "fence_failed", ...).
	Code string `json:"code,omitempty"`
	// Detail is what a failed operation did, when it did something
	// (fence_failed: the operation with its steps).
	Detail json.RawMessage `json:"detail,omitempty"`
}
