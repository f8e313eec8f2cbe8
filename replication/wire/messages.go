package wire

import (
	"fmt"
)

// Type identifies a message.
type Type uint8

// Message types.
const (
	TypeHello Type = iota + 1
	TypeState
	TypeWrite
	TypeRecvAck
	TypeWriteAck
	TypeFlush
	TypeFlushAck
	TypeBitmap
	TypeResyncData
	TypeResyncAck
	TypeSyncDone
	TypeDigest
	TypeDigestReply
	TypePing
	TypePingAck
	TypeGoodbye
	TypeZero
	TypeVerifyStart
	TypeVerifyDone
	TypeOutOfSync
	TypeConfirmed
	maxType
)

var typeNames = [...]string{"", "hello", "state", "write", "recv-ack", "write-ack", "flush", "flush-ack", "bitmap", "resync-data", "resync-ack", "sync-done", "digest", "digest-reply", "ping", "ping-ack", "goodbye", "zero", "verify-start", "verify-done", "out-of-sync", "confirmed"}

func (t Type) String() string {
	if t > 0 && t < maxType {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Message is any decoded message.
type Message interface {
	Type() Type
	// Append appends the payload encoding (for data messages, including
	// the data).
	Append(dst []byte) []byte
}

// Version is the protocol version in Hello.
// Version 2 added SyncToward; version 3 HelloPending, HelloGraceQuorum
// and the State each side sends when it decides (a peer counts for quorum
// from that State on), and State.SyncToward; version 4 HelloAlone (now
// HelloUncommitted); version 5 State.Uncommitted (a generation commits
// once enough nodes recorded it that every majority meets one) and
// ResyncData.Lagging; version 6 HelloPending and State.Pending from
// secondaries too (a copy known only as announced records nothing) and
// HelloCrashedSecondary.
const Version uint16 = 6

// Hello flags.
const (
	HelloCrashedPrimary uint32 = 1 << iota
	HelloPrimaryBeforeSplit
	HelloAllowTwoPrimaries
	HelloDiscardMyData
	// HelloMesh: the sender's volume has more than one peer (resyncs
	// between secondaries wait for a primary).
	HelloMesh
	// HelloTentative: the sender's current generation was taken from a
	// primary that has not confirmed it (wire.State.Pending), or taken
	// as primary under quorum with no peer recording it yet.
	HelloTentative
	// HelloNoQuorum: the sender is primary without quorum.
	HelloNoQuorum
	// HelloLostQuorum: the sender lost quorum while primary and has not
	// resynced from a peer since (a split brain is resolved against it).
	HelloLostQuorum
	// HelloPending: the current generation in this Hello is one a primary
	// announced and had not taken yet (State.Pending): the sender is that
	// primary, or a secondary that had not heard it taken when it last
	// heard from it. The sender's data is that of History[0].
	HelloPending
	// HelloGraceQuorum: the sender is a primary that has quorum only by
	// counting peers its promotion is still handshaking with again: until
	// they accept it, it may be the stale side of a partition.
	HelloGraceQuorum
	// HelloUncommitted: the sender's tentative current generation was
	// started by a primary under quorum that had not seen enough nodes
	// record it (engine commitSize), when the sender last heard (the sender itself,
	// or the primary it followed); no write in it was acknowledged before
	// that (uuid.Side.Uncommitted).
	HelloUncommitted
	// HelloCrashedSecondary: the sender crashed while secondary and has
	// not resynced as a target since: its marked blocks may hold older
	// data than the peer's (uuid.Side.CrashedSecondary).
	HelloCrashedSecondary
)

// Hello opens a volume's connection (after authentication): what each side
// knows of itself, for the generation comparison.
type Hello struct {
	Version     uint16
	Volume      string
	NodeID      uint32
	DataSize    int64
	Granularity uint32 // bitmap bytes per bit
	Protocol    byte   // 'A', 'B' or 'C'
	Role        uint8
	Disk        uint8
	Flags       uint32
	Current     uint64
	Bitmap      uint64 // bitmap UUID of the sender's slot for the receiver
	History     []uint64
	ChangedBits int64 // bits set in that slot
	// SyncToward, from an Inconsistent node, is the generation its
	// interrupted resync was bringing it to (0: unknown, e.g. a new node).
	SyncToward uint64
}

// State announces a role, disk-state or generation change, and from a
// primary a change of the peers in sync with it.
type State struct {
	Role uint8
	Disk uint8
	// Current is the sender's current UUID (so a peer in sync follows a
	// new generation).
	Current uint64
	// InSync, from a primary, is the set of nodes (bit = node id) that
	// are in sync with it: they receive its writes and hold its data.
	InSync uint32
	// Pending, from a primary: Current is a new generation its in-sync
	// peers take before it does (mesh.go); a peer's copy stays tentative
	// until a State without Pending. From a secondary: it holds Current
	// only as announced (it has not heard its primary take it), which
	// does not count as recording it (engine recorded).
	Pending bool
	// SyncToward, from an Inconsistent node, is the generation its resync
	// is bringing it to (0 if unknown), as in Hello: a node may become a
	// sync target after its Hello.
	SyncToward uint64
	// Uncommitted, from a primary under quorum: Current has not yet been
	// recorded by enough nodes (so many, the primary included, that every
	// majority meets one), so no write in it is acknowledged (mesh.go); a
	// peer's copy is tentative and void against a primary with quorum
	// that lacks it (uuid.Side.Uncommitted).
	Uncommitted bool
}

// Write carries a replicated application write.
type Write struct {
	Seq    uint64
	Offset uint64
	FUA    bool
	CRC    uint32
	// Applied is the last of the receiver's own writes whose apply had
	// begun on the sender when it issued this one (they apply in order):
	// with two primaries, the receiver's writes above it that overlap this
	// one land after it on the sender (see engine/conflict.go).
	Applied uint64
	Data    []byte
}

// Zero is a replicated WRITE_ZEROES or TRIM: the range must read as zeroes.
// It shares the Write sequence and acknowledgements.
type Zero struct {
	Seq        uint64
	Offset     uint64
	Length     uint64
	Deallocate bool
	FUA        bool
	Applied    uint64 // as in Write
}

// RecvAck: every Write up to Seq was received (protocol B).
type RecvAck struct{ Seq uint64 }

// WriteAck: every Write up to Seq was written (protocol C, and for
// transfer-log release under A and B). Err is non-empty if the peer's disk
// failed a write.
type WriteAck struct {
	Seq uint64
	Err string
}

// Flush asks the peer to make every Write received before it durable.
type Flush struct{ Epoch uint64 }

// FlushAck answers Flush.
type FlushAck struct {
	Epoch uint64
	Err   string
}

// Bitmap carries part of the sender's out-of-sync bitmap for the receiver,
// exchanged before a bitmap-based resync. Last marks the final chunk.
type Bitmap struct {
	StartWord uint64
	Last      bool
	Words     []uint64
}

// ResyncData carries a block range from the sync source.
type ResyncData struct {
	Offset uint64
	CRC    uint32
	// Lagging is the set of nodes (bit = node id) in the source's
	// in-sync set that had not yet written a write inside this range
	// when the source sent it: they may lack what the data holds, and
	// the target marks the range for them.
	Lagging uint32
	Data    []byte
}

// ResyncAck: the target wrote (or, for checksum resync, found equal) a range.
type ResyncAck struct {
	Offset uint64
	Length uint32
	Err    string
}

// SyncDone ends a resync: the target adopts Current as its generation and
// History as the generations before it.
type SyncDone struct {
	Current uint64
	History []uint64
}

// OutOfSync, from a primary, says that Node may not hold the given
// ranges (writes it had not acknowledged when it left): the receiver marks
// them in its bitmap for Node.
type OutOfSync struct {
	Node   uint32
	Ranges []Range
}

// Range is a byte range.
type Range struct{ Offset, Length uint64 }

// Confirmed, from a primary, says that every write up to Seq on this
// connection has been written by every peer it went to.
type Confirmed struct{ Seq uint64 }

// Digest kinds.
const (
	DigestResync uint8 = 1 // checksum-based resync: source asks "do you have this?"
	DigestVerify uint8 = 2 // online verify
)

// SumSize is the size of one block digest (SHA-256, truncated).
const SumSize = 16

// Digest asks the peer to compare a range, block by block, against the
// sender's digests: Sums holds one SumSize digest per bitmap block.
type Digest struct {
	Kind   uint8
	Offset uint64
	Length uint32
	Sums   []byte
}

// DigestReply answers Digest: bit i of Unequal is set when block i of the
// range differs.
type DigestReply struct {
	Kind    uint8
	Offset  uint64
	Length  uint32
	Unequal []uint64
}

// VerifyStart tells the peer an online verify begins (it becomes VerifyT).
type VerifyStart struct{}

// VerifyDone ends an online verify with the number of differing blocks.
type VerifyDone struct {
	Checked     uint64 // bytes compared
	Differences uint64 // blocks that differed
}

// Ping checks the link is alive.
type Ping struct{}

// PingAck answers Ping.
type PingAck struct{}

// Goodbye tells the peer why the connection is being closed.
type Goodbye struct{ Reason string }

func (*Hello) Type() Type       { return TypeHello }
func (*State) Type() Type       { return TypeState }
func (*Write) Type() Type       { return TypeWrite }
func (*RecvAck) Type() Type     { return TypeRecvAck }
func (*WriteAck) Type() Type    { return TypeWriteAck }
func (*Flush) Type() Type       { return TypeFlush }
func (*FlushAck) Type() Type    { return TypeFlushAck }
func (*Bitmap) Type() Type      { return TypeBitmap }
func (*ResyncData) Type() Type  { return TypeResyncData }
func (*ResyncAck) Type() Type   { return TypeResyncAck }
func (*SyncDone) Type() Type    { return TypeSyncDone }
func (*Digest) Type() Type      { return TypeDigest }
func (*DigestReply) Type() Type { return TypeDigestReply }
func (*Ping) Type() Type        { return TypePing }
func (*PingAck) Type() Type     { return TypePingAck }
func (*Goodbye) Type() Type     { return TypeGoodbye }
func (*Zero) Type() Type        { return TypeZero }
func (*VerifyStart) Type() Type { return TypeVerifyStart }
func (*VerifyDone) Type() Type  { return TypeVerifyDone }
func (*OutOfSync) Type() Type   { return TypeOutOfSync }
func (*Confirmed) Type() Type   { return TypeConfirmed }

// maxString bounds names and reasons.
const maxString = 4096

func appendString(b []byte, s string) []byte {
	if len(s) > maxString {
		s = s[:maxString]
	}
	b = be.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func (m *Hello) Append(b []byte) []byte {
	b = be.AppendUint16(b, m.Version)
	b = appendString(b, m.Volume)
	b = be.AppendUint32(b, m.NodeID)
	b = be.AppendUint64(b, uint64(m.DataSize))
	b = be.AppendUint32(b, m.Granularity)
	b = append(b, m.Protocol, m.Role, m.Disk)
	b = be.AppendUint32(b, m.Flags)
	b = be.AppendUint64(b, m.Current)
	b = be.AppendUint64(b, m.Bitmap)
	b = be.AppendUint64(b, uint64(m.ChangedBits))
	b = appendHistory(b, m.History)
	if m.Version < 2 {
		return b
	}
	return be.AppendUint64(b, m.SyncToward)
}

func (m *State) Append(b []byte) []byte {
	b = append(b, m.Role, m.Disk)
	b = be.AppendUint64(b, m.Current)
	b = be.AppendUint32(b, m.InSync)
	b = appendBool(b, m.Pending)
	b = be.AppendUint64(b, m.SyncToward)
	return appendBool(b, m.Uncommitted)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// WriteFixed is the length of a Write payload before its data.
const WriteFixed = 8 + 8 + 1 + 4 + 8

// AppendFixed appends the part of a Write before the data (senders write
// the data from the caller's buffer without copying it).
func (m *Write) AppendFixed(b []byte) []byte {
	b = be.AppendUint64(b, m.Seq)
	b = be.AppendUint64(b, m.Offset)
	b = appendBool(b, m.FUA)
	b = be.AppendUint32(b, m.CRC)
	return be.AppendUint64(b, m.Applied)
}

func (m *Write) Append(b []byte) []byte { return append(m.AppendFixed(b), m.Data...) }

func (m *Zero) Append(b []byte) []byte {
	b = be.AppendUint64(b, m.Seq)
	b = be.AppendUint64(b, m.Offset)
	b = be.AppendUint64(b, m.Length)
	var f byte
	if m.Deallocate {
		f |= 1
	}
	if m.FUA {
		f |= 2
	}
	return be.AppendUint64(append(b, f), m.Applied)
}

func (m *RecvAck) Append(b []byte) []byte { return be.AppendUint64(b, m.Seq) }

func (m *WriteAck) Append(b []byte) []byte {
	return appendString(be.AppendUint64(b, m.Seq), m.Err)
}

func (m *Flush) Append(b []byte) []byte { return be.AppendUint64(b, m.Epoch) }

func (m *FlushAck) Append(b []byte) []byte {
	return appendString(be.AppendUint64(b, m.Epoch), m.Err)
}

func (m *Bitmap) Append(b []byte) []byte {
	b = be.AppendUint64(b, m.StartWord)
	var last byte
	if m.Last {
		last = 1
	}
	b = append(b, last)
	for _, w := range m.Words {
		b = be.AppendUint64(b, w)
	}
	return b
}

// ResyncFixed is the length of a ResyncData payload before its data.
const ResyncFixed = 8 + 4 + 4

// AppendFixed appends the part of a ResyncData before the data.
func (m *ResyncData) AppendFixed(b []byte) []byte {
	return be.AppendUint32(be.AppendUint32(be.AppendUint64(b, m.Offset), m.CRC), m.Lagging)
}

func (m *ResyncData) Append(b []byte) []byte { return append(m.AppendFixed(b), m.Data...) }

func (m *ResyncAck) Append(b []byte) []byte {
	b = be.AppendUint64(b, m.Offset)
	b = be.AppendUint32(b, m.Length)
	return appendString(b, m.Err)
}

func (m *SyncDone) Append(b []byte) []byte {
	b = be.AppendUint64(b, m.Current)
	return appendHistory(b, m.History)
}

func appendHistory(b []byte, h []uint64) []byte {
	h = h[:min(len(h), MaxHistory)]
	b = append(b, byte(len(h)))
	for _, u := range h {
		b = be.AppendUint64(b, u)
	}
	return b
}

// MaxHistory bounds the history UUIDs a message carries.
const MaxHistory = 32

// MaxRanges bounds the ranges of an OutOfSync message.
const MaxRanges = 4096

func (m *OutOfSync) Append(b []byte) []byte {
	b = be.AppendUint32(b, m.Node)
	rs := m.Ranges[:min(len(m.Ranges), MaxRanges)]
	b = be.AppendUint16(b, uint16(len(rs)))
	for _, r := range rs {
		b = be.AppendUint64(be.AppendUint64(b, r.Offset), r.Length)
	}
	return b
}

func (m *Confirmed) Append(b []byte) []byte { return be.AppendUint64(b, m.Seq) }

func (m *Digest) Append(b []byte) []byte {
	b = append(b, m.Kind)
	b = be.AppendUint64(b, m.Offset)
	b = be.AppendUint32(b, m.Length)
	return append(b, m.Sums...)
}

func (m *DigestReply) Append(b []byte) []byte {
	b = append(b, m.Kind)
	b = be.AppendUint64(b, m.Offset)
	b = be.AppendUint32(b, m.Length)
	for _, w := range m.Unequal {
		b = be.AppendUint64(b, w)
	}
	return b
}

func (*VerifyStart) Append(b []byte) []byte { return b }

func (m *VerifyDone) Append(b []byte) []byte {
	return be.AppendUint64(be.AppendUint64(b, m.Checked), m.Differences)
}

func (*Ping) Append(b []byte) []byte    { return b }
func (*PingAck) Append(b []byte) []byte { return b }

func (m *Goodbye) Append(b []byte) []byte { return appendString(b, m.Reason) }

// AppendFrame appends a whole frame (header and payload) for m.
func AppendFrame(dst []byte, m Message) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	dst = m.Append(dst)
	PutHeader(dst[start:], m.Type(), 0, len(dst)-start-HeaderSize)
	return dst
}
