package locktable

import (
	"fmt"
	"strings"
)

// Flags are the kernel's DLM_LKF_* request flags, with the same bit values
// (include/uapi/linux/dlmconstants.h) so that they read the same in dumps and
// on the wire.
type Flags uint32

// The request flags.
const (
	NoQueue     Flags = 0x00000001 // fail with WouldBlock instead of queueing
	Cancel      Flags = 0x00000002 // unlock only: cancel a pending request or conversion
	Convert     Flags = 0x00000004 // change the mode of an existing lock
	ValBlk      Flags = 0x00000008 // read the LVB on grant; write it from PW/EX on down-convert or unlock
	QueCvt      Flags = 0x00000010 // queue a compatible conversion behind earlier ones
	IVValBlk    Flags = 0x00000020 // invalidate the resource's LVB
	ConvDeadlk  Flags = 0x00000040 // on conversion deadlock, demote the granted mode to NL
	Persistent  Flags = 0x00000080 // the lock outlives its owner and becomes an orphan
	NoDlckWt    Flags = 0x00000100 // on conversion deadlock, queue and send a BAST instead of failing
	NoDlckBlk   Flags = 0x00000200 // not implemented by the kernel either
	Expedite    Flags = 0x00000400 // new NL request: grant ignoring the queues
	NoQueueBast Flags = 0x00000800 // with NoQueue: send BASTs before failing
	HeadQue     Flags = 0x00001000 // enqueue at the head of the converting or waiting queue
	NoOrder     Flags = 0x00002000 // grant as soon as compatible, ignoring queue order
	Orphan      Flags = 0x00004000 // adopt an orphaned PERSISTENT lock
	AltPR       Flags = 0x00008000 // if not grantable, grant PR instead (sets AltMode)
	AltCW       Flags = 0x00010000 // if not grantable, grant CW instead (sets AltMode)
	ForceUnlock Flags = 0x00020000 // unlock even while converting or waiting
)

var flagNames = []struct {
	f Flags
	n string
}{
	{NoQueue, "NOQUEUE"}, {Cancel, "CANCEL"}, {Convert, "CONVERT"}, {ValBlk, "VALBLK"},
	{QueCvt, "QUECVT"}, {IVValBlk, "IVVALBLK"}, {ConvDeadlk, "CONVDEADLK"},
	{Persistent, "PERSISTENT"}, {NoDlckWt, "NODLCKWT"}, {NoDlckBlk, "NODLCKBLK"},
	{Expedite, "EXPEDITE"}, {NoQueueBast, "NOQUEUEBAST"}, {HeadQue, "HEADQUE"},
	{NoOrder, "NOORDER"}, {Orphan, "ORPHAN"}, {AltPR, "ALTPR"}, {AltCW, "ALTCW"},
	{ForceUnlock, "FORCEUNLOCK"},
}

func (f Flags) String() string {
	if f == 0 {
		return "0"
	}
	var parts []string
	rest := f
	for _, fn := range flagNames {
		if f&fn.f != 0 {
			parts = append(parts, fn.n)
			rest &^= fn.f
		}
	}
	if rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint32(rest)))
	}
	return strings.Join(parts, "|")
}

// ParseFlags parses a list of flag names separated by '|' or ',' (any case).
func ParseFlags(s string) (Flags, error) {
	var f Flags
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == '|' || r == ',' }) {
		part = strings.TrimSpace(part)
		found := false
		for _, fn := range flagNames {
			if strings.EqualFold(part, fn.n) {
				f |= fn.f
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("%w: unknown flag %q", ErrInvalid, part)
		}
	}
	return f, nil
}

// SBFlags are the status flags of a completion (the kernel's DLM_SBF_*).
type SBFlags uint8

// The status flags.
const (
	Demoted     SBFlags = 0x01 // the granted mode was demoted to NL to break a conversion deadlock
	ValNotValid SBFlags = 0x02 // the resource's LVB is not valid
	AltMode     SBFlags = 0x04 // the lock was granted in its alternate mode (ALTPR/ALTCW)
)

func (s SBFlags) String() string {
	var parts []string
	if s&Demoted != 0 {
		parts = append(parts, "DEMOTED")
	}
	if s&ValNotValid != 0 {
		parts = append(parts, "VALNOTVALID")
	}
	if s&AltMode != 0 {
		parts = append(parts, "ALTMODE")
	}
	if rest := s &^ (Demoted | ValNotValid | AltMode); rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint8(rest)))
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, "|")
}

// MaxNameLen is the longest resource name, in bytes (DLM_RESNAME_MAXLEN).
const MaxNameLen = 64

// lockFlags are the flags a lock or convert request may carry.
const lockFlags = NoQueue | Convert | ValBlk | QueCvt | IVValBlk | ConvDeadlk |
	Persistent | NoDlckWt | Expedite | NoQueueBast | HeadQue | NoOrder | Orphan |
	AltPR | AltCW

// ValidateLock applies the kernel's argument checks for dlm_lock
// (set_lock_args): the mode, the name length for new locks, and the flag
// combinations. It does not know the lock's current state; Convert checks
// QUECVT against the granted mode.
func ValidateLock(mode Mode, flags Flags, nameLen int) error {
	switch {
	case !mode.Valid():
		return fmt.Errorf("%w: mode %v", ErrInvalid, mode)
	case flags&^lockFlags != 0:
		return fmt.Errorf("%w: flags %v not allowed on a lock request", ErrInvalid, flags&^lockFlags)
	case flags&Convert == 0 && (nameLen < 1 || nameLen > MaxNameLen):
		return fmt.Errorf("%w: resource name of %d bytes (want 1..%d)", ErrInvalid, nameLen, MaxNameLen)
	case flags&QueCvt != 0 && flags&Convert == 0:
		return fmt.Errorf("%w: QUECVT without CONVERT", ErrInvalid)
	case flags&ConvDeadlk != 0 && flags&Convert == 0:
		return fmt.Errorf("%w: CONVDEADLK without CONVERT", ErrInvalid)
	case flags&ConvDeadlk != 0 && flags&NoQueue != 0:
		return fmt.Errorf("%w: CONVDEADLK with NOQUEUE", ErrInvalid)
	case flags&Expedite != 0 && flags&(Convert|QueCvt|NoQueue) != 0:
		return fmt.Errorf("%w: EXPEDITE with CONVERT, QUECVT or NOQUEUE", ErrInvalid)
	case flags&Expedite != 0 && mode != NL:
		return fmt.Errorf("%w: EXPEDITE is only for NL requests", ErrInvalid)
	case flags&Orphan != 0 && flags&Convert != 0:
		return fmt.Errorf("%w: ORPHAN with CONVERT", ErrInvalid)
	}
	return nil
}

// unlockFlags are the flags dlm_unlock accepts.
const unlockFlags = Cancel | ValBlk | IVValBlk | ForceUnlock

// ValidateUnlock applies the kernel's checks for dlm_unlock
// (set_unlock_args).
func ValidateUnlock(flags Flags) error {
	switch {
	case flags&^unlockFlags != 0:
		return fmt.Errorf("%w: flags %v not allowed on unlock", ErrInvalid, flags&^unlockFlags)
	case flags&Cancel != 0 && flags&ForceUnlock != 0:
		return fmt.Errorf("%w: CANCEL with FORCEUNLOCK", ErrInvalid)
	}
	return nil
}
