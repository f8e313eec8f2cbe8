package locktable

import (
	"fmt"
	"strings"
)

// NodeID names a cluster node. Zero means "no node".
type NodeID uint32

// LockID names a lock cluster-wide: the node whose process holds it and the
// id that node gave it. Master copies are keyed by it, so a lock keeps its id
// when its resource is remastered.
type LockID struct {
	Node NodeID
	ID   uint32
}

func (l LockID) String() string { return fmt.Sprintf("%d:%08x", l.Node, l.ID) }

// Mode is a lock mode. The values are the kernel's (DLM_LOCK_NL..EX);
// IV is the kernel's DLM_LOCK_IV: no mode (not granted, or no request).
type Mode int8

// The six VMS lock modes, weakest first, and IV for "none".
const (
	IV Mode = -1 // no mode
	NL Mode = 0  // null: no access, keeps the resource and its LVB alive
	CR Mode = 1  // concurrent read
	CW Mode = 2  // concurrent write
	PR Mode = 3  // protected read
	PW Mode = 4  // protected write
	EX Mode = 5  // exclusive
)

// Modes lists the six real modes, weakest first.
var Modes = [...]Mode{NL, CR, CW, PR, PW, EX}

var modeNames = [...]string{"NL", "CR", "CW", "PR", "PW", "EX"}

// Valid reports whether m is one of the six real modes.
func (m Mode) Valid() bool { return m >= NL && m <= EX }

func (m Mode) String() string {
	if m.Valid() {
		return modeNames[m]
	}
	if m == IV {
		return "IV"
	}
	return fmt.Sprintf("Mode(%d)", int8(m))
}

// ParseMode parses a mode name (NL, CR, CW, PR, PW, EX; any case).
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if strings.EqualFold(s, n) {
			return Mode(i), nil
		}
	}
	return IV, fmt.Errorf("%w: mode %q (want NL, CR, CW, PR, PW or EX)", ErrInvalid, s)
}

// compat is the VMS compatibility matrix (the kernel's __dlm_compat_matrix
// without its UN row/column and padding).
var compat = [6][6]bool{
	/*        NL    CR     CW     PR     PW     EX */
	/* NL */ {true, true, true, true, true, true},
	/* CR */ {true, true, true, true, true, false},
	/* CW */ {true, true, true, false, false, false},
	/* PR */ {true, true, false, true, false, false},
	/* PW */ {true, true, false, false, false, false},
	/* EX */ {true, false, false, false, false, false},
}

// Compatible reports whether a lock granted in mode a can coexist with one
// granted in mode b. IV (no mode) is compatible with everything, as the
// kernel's UN row is.
func Compatible(a, b Mode) bool {
	if a == IV || b == IV {
		return true
	}
	if !a.Valid() || !b.Valid() {
		return false
	}
	return compat[a][b]
}

// LVBAction is what a grant does with the lock value block.
type LVBAction int8

// The three entries of the kernel's dlm_lvb_operations table.
const (
	LVBNone  LVBAction = -1 // nothing happens to the LVB
	LVBWrite LVBAction = 0  // the caller's LVB is written to the resource
	LVBRead  LVBAction = 1  // the resource's LVB is returned to the caller
)

func (a LVBAction) String() string {
	switch a {
	case LVBNone:
		return "none"
	case LVBWrite:
		return "write"
	case LVBRead:
		return "read"
	}
	return fmt.Sprintf("LVBAction(%d)", int8(a))
}

// lvbOps is dlm_lvb_operations indexed [granted+1][requested+1] over
// IV, NL..EX (the kernel's padding row and column are dropped).
var lvbOps = [7][7]LVBAction{
	/*         IV       NL        CR        CW        PR        PW        EX */
	/* IV */ {LVBNone, LVBRead, LVBRead, LVBRead, LVBRead, LVBRead, LVBRead},
	/* NL */ {LVBNone, LVBRead, LVBRead, LVBRead, LVBRead, LVBRead, LVBRead},
	/* CR */ {LVBNone, LVBNone, LVBRead, LVBRead, LVBRead, LVBRead, LVBRead},
	/* CW */ {LVBNone, LVBNone, LVBNone, LVBRead, LVBRead, LVBRead, LVBRead},
	/* PR */ {LVBNone, LVBNone, LVBNone, LVBNone, LVBRead, LVBRead, LVBRead},
	/* PW */ {LVBNone, LVBWrite, LVBWrite, LVBWrite, LVBWrite, LVBWrite, LVBRead},
	/* EX */ {LVBNone, LVBWrite, LVBWrite, LVBWrite, LVBWrite, LVBWrite, LVBWrite},
}

// LVBOp returns what granting a lock held in mode granted (IV for a new
// lock) at mode requested does with the LVB.
func LVBOp(granted, requested Mode) LVBAction {
	if granted < IV || granted > EX || requested < IV || requested > EX {
		return LVBNone
	}
	return lvbOps[granted+1][requested+1]
}

// quecvt is the kernel's __quecvt_compat_matrix: the conversions QUECVT may
// be used with (granted row, requested column): strictly upward ones only.
var quecvt = [6][6]bool{
	/*        NL     CR     CW     PR     PW     EX */
	/* NL */ {false, true, true, true, true, true},
	/* CR */ {false, false, true, true, true, true},
	/* CW */ {false, false, false, true, true, true},
	/* PR */ {false, false, true, false, true, true},
	/* PW */ {false, false, false, false, false, true},
	/* EX */ {false, false, false, false, false, false},
}

// QuecvtAllowed reports whether a conversion from granted to requested may
// carry QUECVT.
func QuecvtAllowed(granted, requested Mode) bool {
	if !granted.Valid() || !requested.Valid() {
		return false
	}
	return quecvt[granted][requested]
}

// MiddleConversion reports whether a conversion is between PR and CW, which
// are incomparable: neither is stronger than the other.
func MiddleConversion(granted, requested Mode) bool {
	return (granted == PR && requested == CW) || (granted == CW && requested == PR)
}

// DownConversion reports whether a conversion lowers the mode (and is not a
// PR/CW middle conversion). Down-conversions are always granted at once.
func DownConversion(granted, requested Mode) bool {
	return !MiddleConversion(granted, requested) && requested < granted
}
