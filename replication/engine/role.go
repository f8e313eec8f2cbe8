package engine

import (
	"fmt"

	"github.com/replicad/replicad/replication/wire"
)

// Promote makes this node primary. It needs UpToDate data unless force is
// set; with force, the local data becomes UpToDate and starts a new
// generation, so connected peers resync from it (they are reconnected to
// redo the handshake). A connected primary peer blocks promotion unless
// two primaries are allowed.
func (e *Engine) Promote(force bool) (Output, error) {
	var o Output
	if e.role == Primary {
		return o, nil
	}
	if e.failed != nil {
		return o, fmt.Errorf("%w: the local disk failed: %v", ErrNotUpToDate, e.failed)
	}
	for _, p := range e.peers {
		if p.conn == Connected && p.role == Primary && !e.cfg.AllowTwoPrimaries {
			return o, fmt.Errorf("%w: node %d (demote it first, or allow two primaries)", ErrPeerPrimary, p.id)
		}
		if p.repl == SyncTarget && !force {
			return o, fmt.Errorf("%w: resync from node %d is not finished (data Inconsistent)", ErrNotUpToDate, p.id)
		}
	}
	if peers := e.needsFencing(); len(peers) > 0 && !force {
		return o, &NeedsFencingError{Peers: peers}
	}
	disk := e.Disk()
	forced := false
	if disk != UpToDate {
		if !force {
			return o, fmt.Errorf("%w: disk is %v; promote with --force to make this node's data the valid copy", ErrNotUpToDate, disk)
		}
		forced = true
	}
	oldRole := e.role
	e.role = Primary
	e.gen.Primary = true
	if forced {
		e.gen.Consistent, e.gen.UpToDate = true, true
		e.pushHistory(e.gen.Current)
		e.gen.Current = e.freshUUID()
		for _, p := range e.peers {
			if p.conn == Connected {
				o.Disconnects = append(o.Disconnects, Disconnect{Peer: p.id, Reason: "forced promotion started a new generation; reconnecting to resync"})
			}
		}
	} else {
		// Data the absent peers will not get begins a new generation now.
		absent := false
		for _, p := range e.peers {
			if !p.replicating() && e.gen.Slots[p.slot].Bitmap == 0 {
				absent = true
			}
		}
		if absent {
			e.newGeneration()
		}
	}
	if err := e.persist(); err != nil {
		e.role, e.gen.Primary = oldRole, false
		e.diskFailed(&o, err)
		return o, fmt.Errorf("promote: write metadata: %w", err)
	}
	e.event(&o, "role", oldRole.String(), e.role.String(), map[bool]string{true: "forced", false: ""}[forced])
	if forced {
		e.event(&o, "disk", disk.String(), e.Disk().String(), "forced promotion")
	}
	e.announce(&o)
	return o, nil
}

// Demote makes this node secondary. The caller must have stopped new
// writes; writes in flight finish.
func (e *Engine) Demote() (Output, error) {
	var o Output
	if e.role == Secondary {
		return o, nil
	}
	old := e.role
	e.role = Secondary
	e.gen.Primary = false
	if err := e.persist(); err != nil {
		e.diskFailed(&o, err)
	}
	e.event(&o, "role", old.String(), e.role.String(), "")
	e.announce(&o)
	return o, nil
}

// announce tells connected peers our role and disk state.
func (e *Engine) announce(o *Output) {
	for _, id := range e.cfg.Peers {
		p := e.peers[id]
		if p.conn == Connected && p.hello != nil {
			o.Sends = append(o.Sends, Send{id, &wire.State{Role: uint8(e.role), Disk: uint8(e.Disk()), Current: e.gen.Current}})
		}
	}
}
