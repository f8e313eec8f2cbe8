package engine

// Role is a node's role for the volume.
type Role uint8

// Roles.
const (
	RoleUnknown Role = iota
	Secondary
	Primary
)

func (r Role) String() string { return [...]string{"Unknown", "Secondary", "Primary"}[r] }

// DiskState is DRBD's disk state.
type DiskState uint8

// Disk states.
const (
	DUnknown DiskState = iota
	Diskless
	Attaching
	Failed
	Inconsistent
	Outdated
	Consistent
	UpToDate
)

func (d DiskState) String() string {
	return [...]string{"DUnknown", "Diskless", "Attaching", "Failed", "Inconsistent", "Outdated", "Consistent", "UpToDate"}[d]
}

// ConnState is a peer connection's state.
type ConnState uint8

// Connection states.
const (
	StandAlone ConnState = iota
	Connecting
	Connected
	Disconnecting
)

func (c ConnState) String() string {
	return [...]string{"StandAlone", "Connecting", "Connected", "Disconnecting"}[c]
}

// ReplState is a connected peer's replication state.
type ReplState uint8

// Replication states.
const (
	ReplOff ReplState = iota
	WFBitmap
	Established
	SyncSource
	SyncTarget
	VerifyS
	VerifyT
	PausedSyncS
	PausedSyncT
)

func (r ReplState) String() string {
	return [...]string{"Off", "WFBitmap", "Established", "SyncSource", "SyncTarget", "VerifyS", "VerifyT", "PausedSyncS", "PausedSyncT"}[r]
}
