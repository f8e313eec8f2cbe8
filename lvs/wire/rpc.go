package wire

import (
	"encoding/binary"
	"fmt"
	"io"
)

// ONC RPC numbers (RFC 5531) and the NFS program (RFC 1813, RFC 7530).
const (
	NFSProgram = 100003
	rpcVersion = 2
	msgCall    = 0
	msgReply   = 1
	lastFrag   = 0x80000000
)

// AcceptStat is the status of an accepted RPC call.
type AcceptStat uint32

// Accept statuses.
const (
	Success      AcceptStat = 0
	ProgUnavail  AcceptStat = 1
	ProgMismatch AcceptStat = 2
	ProcUnavail  AcceptStat = 3
	GarbageArgs  AcceptStat = 4
	SystemErr    AcceptStat = 5
)

func (s AcceptStat) String() string {
	switch s {
	case Success:
		return "SUCCESS"
	case ProgUnavail:
		return "PROG_UNAVAIL"
	case ProgMismatch:
		return "PROG_MISMATCH"
	case ProcUnavail:
		return "PROC_UNAVAIL"
	case GarbageArgs:
		return "GARBAGE_ARGS"
	case SystemErr:
		return "SYSTEM_ERR"
	}
	return fmt.Sprintf("accept_stat(%d)", uint32(s))
}

// NullCall returns a complete record (record mark included) calling
// procedure 0 of prog/vers with AUTH_NONE credentials.
func NullCall(xid, prog, vers uint32) []byte {
	body := make([]byte, 0, 40)
	for _, v := range []uint32{xid, msgCall, rpcVersion, prog, vers, 0, 0, 0, 0, 0} {
		// xid, CALL, rpcvers, prog, vers, proc 0, cred {AUTH_NONE, 0}, verf {AUTH_NONE, 0}
		body = binary.BigEndian.AppendUint32(body, v)
	}
	rec := binary.BigEndian.AppendUint32(nil, lastFrag|uint32(len(body)))
	return append(rec, body...)
}

// ReadRecord reads one record (all its fragments) from a TCP stream,
// refusing records longer than limit.
func ReadRecord(r io.Reader, limit int) ([]byte, error) {
	var rec []byte
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if len(rec) > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		mark := binary.BigEndian.Uint32(hdr[:])
		n := int(mark &^ lastFrag)
		if len(rec)+n > limit {
			return nil, fmt.Errorf("%w: rpc record over %d bytes", ErrTooLarge, limit)
		}
		frag := make([]byte, n)
		if _, err := io.ReadFull(r, frag); err != nil {
			return nil, fmt.Errorf("%w: rpc fragment truncated: %v", ErrMalformed, err)
		}
		rec = append(rec, frag...)
		if mark&lastFrag != 0 {
			return rec, nil
		}
	}
}

// Reply is a decoded RPC reply.
type Reply struct {
	XID      uint32
	Accepted bool
	Stat     AcceptStat // when Accepted
	// Low and High are the supported versions for PROG_MISMATCH (accepted)
	// or RPC_MISMATCH (denied).
	Low, High uint32
	// AuthStat is the auth_stat of a call denied with AUTH_ERROR.
	AuthStat uint32
	// RPCMismatch is true for a call denied with RPC_MISMATCH.
	RPCMismatch bool
}

// Err describes why a reply is not a success, or nil for SUCCESS.
func (r Reply) Err() error {
	switch {
	case r.Accepted && r.Stat == Success:
		return nil
	case r.Accepted && r.Stat == ProgMismatch:
		return fmt.Errorf("rpc: program version mismatch (server supports %d..%d)", r.Low, r.High)
	case r.Accepted:
		return fmt.Errorf("rpc: call accepted with %s", r.Stat)
	case r.RPCMismatch:
		return fmt.Errorf("rpc: denied, rpc version mismatch (%d..%d)", r.Low, r.High)
	}
	return fmt.Errorf("rpc: denied, auth error %d", r.AuthStat)
}

type xdr struct {
	b   []byte
	err error
}

func (x *xdr) u32() uint32 {
	if x.err != nil {
		return 0
	}
	if len(x.b) < 4 {
		x.err = fmt.Errorf("%w: rpc reply truncated", ErrMalformed)
		return 0
	}
	v := binary.BigEndian.Uint32(x.b)
	x.b = x.b[4:]
	return v
}

func (x *xdr) opaque(limit uint32) {
	n := x.u32()
	if x.err != nil {
		return
	}
	if n > limit {
		x.err = fmt.Errorf("%w: opaque of %d bytes (limit %d)", ErrMalformed, n, limit)
		return
	}
	padded := (int(n) + 3) &^ 3
	if len(x.b) < padded {
		x.err = fmt.Errorf("%w: rpc reply truncated in opaque data", ErrMalformed)
		return
	}
	x.b = x.b[padded:]
}

// ParseReply decodes a reply record (without its record mark).
func ParseReply(rec []byte) (Reply, error) {
	x := &xdr{b: rec}
	var r Reply
	r.XID = x.u32()
	if t := x.u32(); x.err == nil && t != msgReply {
		return r, fmt.Errorf("%w: message type %d, want REPLY", ErrMalformed, t)
	}
	switch stat := x.u32(); {
	case x.err != nil:
	case stat == 0: // MSG_ACCEPTED
		r.Accepted = true
		x.u32()       // verifier flavor
		x.opaque(400) // verifier body (RFC 5531: at most 400 bytes)
		r.Stat = AcceptStat(x.u32())
		if x.err == nil && r.Stat == ProgMismatch {
			r.Low, r.High = x.u32(), x.u32()
		}
	case stat == 1: // MSG_DENIED
		switch rej := x.u32(); {
		case x.err != nil:
		case rej == 0: // RPC_MISMATCH
			r.RPCMismatch = true
			r.Low, r.High = x.u32(), x.u32()
		case rej == 1: // AUTH_ERROR
			r.AuthStat = x.u32()
		default:
			return r, fmt.Errorf("%w: reject status %d", ErrMalformed, rej)
		}
	default:
		return r, fmt.Errorf("%w: reply status %d", ErrMalformed, stat)
	}
	return r, x.err
}
