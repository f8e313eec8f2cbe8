package engine

import (
	"errors"
	"fmt"
	"strings"
)

// Quorum: with quorum majority a node that cannot reach more than half of
// the volume's nodes (itself included) may not be promoted, and a primary
// in that position stops writing: its I/O is suspended until quorum
// returns (suspend-io), or fails (io-error). So in a partition only the
// majority side can have a primary that changes data, and a primary cut
// off in the minority cannot go on writing data that the majority's new
// primary will never have. Counted: peers with a live, authenticated
// connection whose handshake decided how to replicate (reachable).

// QuorumPolicy is the volume's quorum setting.
type QuorumPolicy uint8

// Quorum policies.
const (
	QuorumOff QuorumPolicy = iota
	QuorumMajority
)

// OnNoQuorum is what a primary does without quorum.
type OnNoQuorum uint8

// What a primary without quorum does.
const (
	SuspendIO OnNoQuorum = iota
	IOError
)

// ErrNoQuorum is returned for writes on a primary without quorum under
// on-no-quorum io-error, and by Promote without quorum.
var ErrNoQuorum = errors.New("no quorum")

func (q QuorumPolicy) String() string { return [...]string{"off", "majority"}[q] }

func (q OnNoQuorum) String() string { return [...]string{"suspend-io", "io-error"}[q] }

// ParseQuorum parses "off" or "majority" ("" is off).
func ParseQuorum(s string) (QuorumPolicy, error) {
	switch strings.ToLower(s) {
	case "", "off":
		return QuorumOff, nil
	case "majority":
		return QuorumMajority, nil
	}
	return 0, fmt.Errorf("quorum: %q; want off or majority", s)
}

// ParseOnNoQuorum parses "suspend-io" or "io-error" ("" is suspend-io).
func ParseOnNoQuorum(s string) (OnNoQuorum, error) {
	switch strings.ToLower(s) {
	case "", "suspend-io":
		return SuspendIO, nil
	case "io-error":
		return IOError, nil
	}
	return 0, fmt.Errorf("on-no-quorum: %q; want suspend-io or io-error", s)
}

// Quorate reports whether this node has quorum (always, with quorum off).
func (e *Engine) Quorate() bool {
	return e.cfg.Quorum == QuorumOff || e.majority(e.reachable())
}

// majority: n nodes are more than half of the volume's.
func (e *Engine) majority(n int) bool { return 2*n > len(e.cfg.Peers)+1 }

// quorumChanged reports a change of quorum as an event.
func (e *Engine) quorumChanged(o *Output) {
	q := e.Quorate()
	if q == e.quorate {
		return
	}
	e.quorate = q
	if e.role == Primary && q == e.gen.LostQuorum {
		// lost as primary: remembered across restarts until regained
		// as primary or resynced from a peer
		e.gen.LostQuorum = !q
		if err := e.persist(); err != nil {
			e.diskFailed(o, err)
		}
	}
	old, now := "yes", "no"
	if q {
		old, now = now, old
	}
	why := ""
	if e.role == Primary && !q {
		why = "writes " + map[OnNoQuorum]string{SuspendIO: "are suspended until quorum returns", IOError: "fail until quorum returns"}[e.cfg.OnNoQuorum]
	}
	e.event(o, "quorum", old, now, why)
}

// IOError is the error for I/O on a primary without quorum under
// on-no-quorum io-error (nil otherwise).
func (e *Engine) IOError() error {
	if e.role == Primary && e.cfg.OnNoQuorum == IOError && !e.Quorate() {
		return fmt.Errorf("%w: this node reaches %d of %d nodes (on-no-quorum io-error)", ErrNoQuorum, e.reachable(), len(e.cfg.Peers)+1)
	}
	return nil
}

// reachable counts this node and the peers it completed a handshake with,
// on both sides (a connection alone does not count, or a primary cut off
// in a minority would thaw the moment it reconnects to a majority that
// promoted another primary, before the handshake refuses two primaries;
// nor does this side's decision alone: a secondary that follows another
// primary refuses when it reads this node's Hello), and the peers a
// promotion is handshaking with again (rehandshake).
func (e *Engine) reachable() int { return e.reach(true) }

// reach counts this node and the peers counted for quorum, and with grace
// those a promotion is handshaking with again.
func (e *Engine) reach(grace bool) int {
	n := 1
	for _, p := range e.order {
		if p.counted() || grace && e.rehandshake&bit(p.id) != 0 {
			n++
		}
	}
	return n
}

// quorateWithoutGrace: Quorate, not counting the peers a promotion is
// handshaking with again.
func (e *Engine) quorateWithoutGrace() bool {
	return e.cfg.Quorum == QuorumOff || e.majority(e.reach(false))
}

// counted: p counts for quorum, its handshake done on both sides.
func (p *peer) counted() bool { return p.conn == Connected && p.decided && p.confirmed }

// rehandshaking: a new primary waits for peers it counts for quorum but
// does not replicate to yet. Writes then would reach only this node.
func (e *Engine) rehandshaking() bool {
	if e.role != Primary {
		return false
	}
	for _, p := range e.order {
		if e.rehandshake&bit(p.id) != 0 && !p.counted() {
			return true
		}
	}
	return false
}

// rehandshakeDone ends p's part of a promotion's grace.
func (e *Engine) rehandshakeDone(o *Output, p *peer) {
	if e.rehandshake&bit(p.id) == 0 {
		return
	}
	e.rehandshake &^= bit(p.id)
	e.quorumChanged(o)
}

// EndRehandshakeGrace stops counting, for quorum, peers a promotion is
// still handshaking with again: the caller calls it once they had time to
// reconnect (a peer that died meanwhile must not keep the quorum).
func (e *Engine) EndRehandshakeGrace() Output {
	var o Output
	e.rehandshake = 0
	e.quorumChanged(&o)
	return o
}

// inDoubtError is the error for writes and flushes still waiting for p
// when this primary is without quorum once p is gone: the majority may not
// have them, and it may promote another primary, so they must not complete
// as successful. Nil when quorum stays.
func (e *Engine) inDoubtError(p *peer) error {
	if e.cfg.Quorum == QuorumOff || e.role != Primary || !p.counted() {
		return nil
	}
	if e.majority(e.reachable() - 1) {
		return nil
	}
	return fmt.Errorf("%w: node %d left before acknowledging, and this node has no majority without it: the data may be lost at failover", ErrNoQuorum, p.id)
}

// quorumFrozen: a primary without quorum under suspend-io, or one
// handshaking again with peers after its promotion.
func (e *Engine) quorumFrozen() bool {
	return e.role == Primary && (e.cfg.OnNoQuorum == SuspendIO && !e.Quorate() || e.rehandshaking())
}

// ioAllowed: writes and flushes may start.
func (e *Engine) ioAllowed() error {
	if err := e.IOError(); err != nil {
		return err
	}
	if e.Suspended() {
		return ErrSuspended
	}
	return nil
}
