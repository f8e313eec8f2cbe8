package wire

import (
	"fmt"

	"github.com/replicad/replicad/dlm/locktable"
)

// Version is the protocol version this package speaks. Version 2 added
// lookups carrying their request (BitCarried); nodes of different
// versions refuse each other's envelopes with ErrVersion.
const Version = 2

// Limits enforced by the decoder.
const (
	MaxFrame       = 64 << 20 // bytes in one frame
	MaxNameLen     = locktable.MaxNameLen
	MaxLockspace   = 64 // bytes in a lockspace name
	MaxLVBLen      = 64
	MaxListEntries = 1 << 20
)

// Type is a message type.
type Type uint8

// Message types. Hello is the only one sent outside a session (Seq 0).
const (
	TypeHello Type = 1 // lockspace membership handshake (unsequenced)
	TypeLeave Type = 2 // the sender leaves the lockspace

	TypeStatus  Type = 10 // recovery: my view and gates
	TypeStart   Type = 11 // recovery: coordinator starts generation Gen
	TypeDirInfo Type = 12 // recovery: names I master or hold locks on
	TypeMasters Type = 13 // recovery: the directory's answer
	TypeLocks   Type = 14 // recovery: my locks on resources you now master

	TypeLookup       Type = 20
	TypeLookupReply  Type = 21
	TypeRequest      Type = 22
	TypeRequestReply Type = 23
	TypeConvert      Type = 24
	TypeConvertReply Type = 25
	TypeUnlock       Type = 26
	TypeUnlockReply  Type = 27
	TypeCancel       Type = 28
	TypeCancelReply  Type = 29
	TypeGrant        Type = 30
	TypeBast         Type = 31
	TypeRemove       Type = 32
)

var typeNames = map[Type]string{
	TypeHello: "hello", TypeLeave: "leave", TypeStatus: "status", TypeStart: "start",
	TypeDirInfo: "dirinfo", TypeMasters: "masters", TypeLocks: "locks",
	TypeLookup: "lookup", TypeLookupReply: "lookup-reply", TypeRequest: "request",
	TypeRequestReply: "request-reply", TypeConvert: "convert", TypeConvertReply: "convert-reply",
	TypeUnlock: "unlock", TypeUnlockReply: "unlock-reply", TypeCancel: "cancel",
	TypeCancelReply: "cancel-reply", TypeGrant: "grant", TypeBast: "bast", TypeRemove: "remove",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Recovery reports whether t is a recovery message, processed during
// recovery instead of buffered.
func (t Type) Recovery() bool { return t >= TypeStatus && t <= TypeLocks }

// Bits are per-message booleans.
const (
	BitWantBast   uint8 = 1 << 0 // request: the holder has a blocking callback
	BitMore       uint8 = 1 << 1 // recovery batch: more parts follow
	BitJoined     uint8 = 1 << 2 // hello: the sender has joined the lockspace
	BitQuorate    uint8 = 1 << 3 // status: the sender's cluster is quorate and has no unknown nodes
	BitRecovering uint8 = 1 << 4 // status: the sender is recovering
	BitKnown      uint8 = 1 << 5 // hello: the sender has seen the receiver know it
	// BitCarried on a lookup: it carries lock LkID's request (Mode, Flags,
	// LVB, BitWantBast; ID is the request's number), for the directory node
	// to run if it masters the resource. On a lookup reply: it did, and the
	// request reply follows.
	BitCarried uint8 = 1 << 6
	bitsMask         = BitWantBast | BitMore | BitJoined | BitQuorate | BitRecovering | BitKnown | BitCarried
)

// Member is a lockspace member: a node and the incarnation of its process.
type Member struct {
	Node locktable.NodeID
	Inc  uint64
}

// FenceState is what a node knows about another node's failures: the
// highest process incarnation of it known to have failed, and the highest
// known to be fenced (0: none). Incarnations grow across restarts, so a
// fence through incarnation i covers every failure up to i.
type FenceState struct {
	Node   locktable.NodeID
	Failed uint64
	Fenced uint64
}

// DirEntry reports a resource to its directory node during recovery.
type DirEntry struct {
	Name     string
	Owner    bool             // the sender masters it
	Believed locktable.NodeID // else: the master the sender last knew (0: none)
}

// MasterEntry is the directory's answer for one resource.
type MasterEntry struct {
	Name     string
	Master   locktable.NodeID
	Remaster bool // the master is new: send it your locks
}

// LockReport is a survivor's copy of one lock, sent to a new master.
type LockReport struct {
	Name     string
	LkID     uint32
	GrMode   locktable.Mode
	RqMode   locktable.Mode
	Status   locktable.Status
	Flags    locktable.Flags
	SB       locktable.SBFlags
	LVB      []byte
	LVBSeq   uint32
	HighBast locktable.Mode
	WantBast bool
}

// Msg is one message. Which fields matter depends on Type; the rest are
// zero.
type Msg struct {
	Type    Type
	Gen     uint64 // generation (recovery) or the sender's completed generation
	ID      uint64 // lookup id; hello: the receiver's incarnation as the sender knows it
	LkID    uint32 // the lock id on its owner node
	Name    string
	Mode    locktable.Mode // requested or granted mode
	RqMode  locktable.Mode
	Flags   locktable.Flags
	SB      locktable.SBFlags
	Result  locktable.Result
	Node    locktable.NodeID // master (lookup reply); hello: LVB length
	LVB     []byte
	LVBSeq  uint32
	Bits    uint8
	View    []Member // status, start: the view; hello: the sender's node and process incarnation
	Fence   []FenceState
	Dir     []DirEntry
	Masters []MasterEntry
	Locks   []LockReport
}

// Has reports whether bit b is set.
func (m *Msg) Has(b uint8) bool { return m.Bits&b != 0 }

// Envelope is one batch of messages from one node to another in one
// lockspace. Seq 0 marks an unsequenced envelope (hello or a bare ack).
type Envelope struct {
	Lockspace string
	From      locktable.NodeID
	FromInc   uint64
	To        locktable.NodeID
	ToInc     uint64
	Seq       uint64
	Ack       uint64
	Msgs      []Msg
}
