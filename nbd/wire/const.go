package wire

import "github.com/pojntfx/go-nbd/pkg/protocol"

// Handshake magics.
const (
	MagicNBD    = protocol.NEGOTIATION_MAGIC_OLDSTYLE // "NBDMAGIC"
	MagicOption = protocol.NEGOTIATION_MAGIC_OPTION   // "IHAVEOPT"
	MagicReply  = protocol.NEGOTIATION_MAGIC_REPLY
)

// Handshake flags (server) and client flags.
const (
	FlagFixedNewstyle = protocol.NEGOTIATION_HANDSHAKE_FLAG_FIXED_NEWSTYLE
	FlagNoZeroes      = uint16(1 << 1)

	ClientFixedNewstyle = uint32(1 << 0)
	ClientNoZeroes      = uint32(1 << 1)
	ClientKnownFlags    = ClientFixedNewstyle | ClientNoZeroes
)

// Options.
const (
	OptExportName      = uint32(1)
	OptAbort           = protocol.NEGOTIATION_ID_OPTION_ABORT
	OptList            = protocol.NEGOTIATION_ID_OPTION_LIST
	OptStartTLS        = uint32(5)
	OptInfo            = protocol.NEGOTIATION_ID_OPTION_INFO
	OptGo              = protocol.NEGOTIATION_ID_OPTION_GO
	OptStructuredReply = uint32(8)
	OptListMetaContext = uint32(9)
	OptSetMetaContext  = uint32(10)
	OptExtendedHeaders = uint32(11)
)

// Option reply types.
const (
	RepAck    = protocol.NEGOTIATION_TYPE_REPLY_ACK
	RepServer = protocol.NEGOTIATION_TYPE_REPLY_SERVER
	RepInfo   = protocol.NEGOTIATION_TYPE_REPLY_INFO

	repErr              = uint32(1 << 31)
	RepErrUnsup         = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNSUPPORTED
	RepErrPolicy        = repErr | 2
	RepErrInvalid       = repErr | 3
	RepErrPlatform      = repErr | 4
	RepErrTLSReqd       = repErr | 5
	RepErrUnknown       = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNKNOWN
	RepErrShutdown      = repErr | 7
	RepErrBlockSizeReqd = repErr | 8
	RepErrTooBig        = repErr | 9
)

// Info types for INFO and GO.
const (
	InfoExport      = protocol.NEGOTIATION_TYPE_INFO_EXPORT
	InfoName        = protocol.NEGOTIATION_TYPE_INFO_NAME
	InfoDescription = protocol.NEGOTIATION_TYPE_INFO_DESCRIPTION
	InfoBlockSize   = protocol.NEGOTIATION_TYPE_INFO_BLOCKSIZE
)

// Transmission flags.
const (
	TFlagHasFlags        = protocol.NEGOTIATION_REPLY_FLAGS_HAS_FLAGS
	TFlagReadOnly        = uint16(1 << 1)
	TFlagSendFlush       = uint16(1 << 2)
	TFlagSendFUA         = uint16(1 << 3)
	TFlagRotational      = uint16(1 << 4)
	TFlagSendTrim        = uint16(1 << 5)
	TFlagSendWriteZeroes = uint16(1 << 6)
	TFlagSendDF          = uint16(1 << 7)
	TFlagCanMultiConn    = protocol.NEGOTIATION_REPLY_FLAGS_CAN_MULTI_CONN
)

// Transmission magics.
const (
	MagicRequest     = protocol.TRANSMISSION_MAGIC_REQUEST
	MagicSimpleReply = protocol.TRANSMISSION_MAGIC_REPLY
)

// Commands.
const (
	CmdRead        = protocol.TRANSMISSION_TYPE_REQUEST_READ
	CmdWrite       = protocol.TRANSMISSION_TYPE_REQUEST_WRITE
	CmdDisc        = protocol.TRANSMISSION_TYPE_REQUEST_DISC
	CmdFlush       = uint16(3)
	CmdTrim        = uint16(4)
	CmdCache       = uint16(5)
	CmdWriteZeroes = uint16(6)
	CmdBlockStatus = uint16(7)
)

// Command flags.
const (
	CmdFlagFUA      = uint16(1 << 0)
	CmdFlagNoHole   = uint16(1 << 1)
	CmdFlagDF       = uint16(1 << 2)
	CmdFlagReqOne   = uint16(1 << 3)
	CmdFlagFastZero = uint16(1 << 4)
)

// Error values in replies (Linux errno numbers, as the protocol defines).
const (
	EPERM     = protocol.TRANSMISSION_ERROR_EPERM
	EIO       = uint32(5)
	ENOMEM    = uint32(12)
	EINVAL    = protocol.TRANSMISSION_ERROR_EINVAL
	ENOSPC    = uint32(28)
	EOVERFLOW = uint32(75)
	ENOTSUP   = uint32(95)
	ESHUTDOWN = uint32(108)
)

// Sizes of fixed-length messages.
const (
	GreetingSize     = 18
	OptionHeaderSize = 16
	RequestSize      = 28
	ReplySize        = 16
)

// CommandName names a command for logs and metrics.
func CommandName(c uint16) string {
	switch c {
	case CmdRead:
		return "read"
	case CmdWrite:
		return "write"
	case CmdDisc:
		return "disc"
	case CmdFlush:
		return "flush"
	case CmdTrim:
		return "trim"
	case CmdCache:
		return "cache"
	case CmdWriteZeroes:
		return "write_zeroes"
	case CmdBlockStatus:
		return "block_status"
	}
	return "unknown"
}
