package uuid

import "fmt"

// After-split-brain policy names, as in DRBD's configuration.
const (
	PolicyDisconnect            = "disconnect"
	PolicyDiscardYoungerPrimary = "discard-younger-primary"
	PolicyDiscardOlderPrimary   = "discard-older-primary"
	PolicyDiscardZeroChanges    = "discard-zero-changes"
	PolicyDiscardLeastChanges   = "discard-least-changes"
	PolicyConsensus             = "consensus"
	PolicyDiscardSecondary      = "discard-secondary"
)

// Policies are the automatic split-brain recovery policies.
type Policies struct {
	// After0Pri applies when neither side is primary: disconnect,
	// discard-younger-primary, discard-older-primary, discard-zero-changes
	// or discard-least-changes.
	After0Pri string `mapstructure:"after-sb-0pri"`
	// After1Pri applies when one side is primary: disconnect, consensus or
	// discard-secondary.
	After1Pri string `mapstructure:"after-sb-1pri"`
	// After2Pri applies when both are primary: disconnect only.
	After2Pri string `mapstructure:"after-sb-2pri"`
}

// DefaultPolicies disconnect in every case, as DRBD does: nothing is
// discarded unless configured.
func DefaultPolicies() Policies {
	return Policies{After0Pri: PolicyDisconnect, After1Pri: PolicyDisconnect, After2Pri: PolicyDisconnect}
}

// Validate reports unknown policy names.
func (p Policies) Validate() error {
	check := func(field, v string, allowed ...string) error {
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return fmt.Errorf("%s: %q; want one of %v", field, v, allowed)
	}
	if err := check("after-sb-0pri", p.After0Pri, PolicyDisconnect, PolicyDiscardYoungerPrimary, PolicyDiscardOlderPrimary, PolicyDiscardZeroChanges, PolicyDiscardLeastChanges); err != nil {
		return err
	}
	if err := check("after-sb-1pri", p.After1Pri, PolicyDisconnect, PolicyConsensus, PolicyDiscardSecondary); err != nil {
		return err
	}
	return check("after-sb-2pri", p.After2Pri, PolicyDisconnect)
}

// SBSide is one side of a split brain.
type SBSide struct {
	NodeID uint32
	// Primary: the side is primary now.
	Primary bool
	// PrimaryBeforeSplit: the side was primary when the two were last
	// connected (the "older" primary).
	PrimaryBeforeSplit bool
	// Changes is how many bitmap blocks the side changed since the split.
	Changes int64
}

// Verdict is the outcome of split-brain recovery.
type Verdict int

// Verdicts, from the point of view of the first side.
const (
	// StayDisconnected: no policy resolves it; an operator must.
	StayDisconnected Verdict = iota
	// DiscardMine: my changes are discarded; I become the sync target.
	DiscardMine
	// DiscardPeer: the peer's changes are discarded; I become the source.
	DiscardPeer
)

func (v Verdict) String() string {
	return [...]string{"disconnect", "discard-mine", "discard-peer"}[v]
}

func (v Verdict) mirror() Verdict {
	switch v {
	case DiscardMine:
		return DiscardPeer
	case DiscardPeer:
		return DiscardMine
	}
	return v
}

// Resolve applies the policies to a split brain between me and peer. Like
// Compare it is symmetric: Resolve(a, b) and Resolve(b, a) agree on who is
// discarded.
func Resolve(me, peer SBSide, p Policies) (Verdict, string) {
	switch n := btoi(me.Primary) + btoi(peer.Primary); n {
	case 0:
		return resolve0(me, peer, p.After0Pri)
	case 1:
		switch p.After1Pri {
		case PolicyDiscardSecondary:
			if me.Primary {
				return DiscardPeer, "after-sb-1pri discard-secondary: the peer is secondary"
			}
			return DiscardMine, "after-sb-1pri discard-secondary: this side is secondary"
		case PolicyConsensus:
			v, why := resolve0(me, peer, p.After0Pri)
			if (v == DiscardMine && !me.Primary) || (v == DiscardPeer && !peer.Primary) {
				return v, "after-sb-1pri consensus: " + why
			}
			return StayDisconnected, "after-sb-1pri consensus: after-sb-0pri would not discard the secondary (" + why + ")"
		}
		return StayDisconnected, "after-sb-1pri disconnect"
	default:
		return StayDisconnected, "after-sb-2pri disconnect: both sides are primary"
	}
}

func resolve0(me, peer SBSide, policy string) (Verdict, string) {
	switch policy {
	case PolicyDiscardYoungerPrimary, PolicyDiscardOlderPrimary:
		if me.PrimaryBeforeSplit == peer.PrimaryBeforeSplit {
			return tieBreak(me, peer, policy+": neither or both were primary before the split")
		}
		// The younger primary is the one that was not primary before the split.
		meYounger := !me.PrimaryBeforeSplit
		if (policy == PolicyDiscardYoungerPrimary) == meYounger {
			return DiscardMine, policy + ": this side loses"
		}
		return DiscardPeer, policy + ": the peer loses"
	case PolicyDiscardZeroChanges:
		switch {
		case me.Changes == 0 && peer.Changes == 0:
			return tieBreak(me, peer, "discard-zero-changes: neither side changed anything")
		case me.Changes == 0:
			return DiscardMine, "discard-zero-changes: this side changed nothing"
		case peer.Changes == 0:
			return DiscardPeer, "discard-zero-changes: the peer changed nothing"
		}
		return StayDisconnected, fmt.Sprintf("discard-zero-changes: both sides changed data (%d and %d blocks)", me.Changes, peer.Changes)
	case PolicyDiscardLeastChanges:
		switch {
		case me.Changes < peer.Changes:
			return DiscardMine, fmt.Sprintf("discard-least-changes: this side changed %d blocks, the peer %d", me.Changes, peer.Changes)
		case peer.Changes < me.Changes:
			return DiscardPeer, fmt.Sprintf("discard-least-changes: the peer changed %d blocks, this side %d", peer.Changes, me.Changes)
		}
		return tieBreak(me, peer, fmt.Sprintf("discard-least-changes: both changed %d blocks", me.Changes))
	}
	return StayDisconnected, "after-sb-0pri disconnect"
}

// tieBreak discards the higher node id, so both sides agree.
func tieBreak(me, peer SBSide, why string) (Verdict, string) {
	if me.NodeID > peer.NodeID {
		return DiscardMine, why + "; the higher node id loses the tie"
	}
	return DiscardPeer, why + "; the higher node id loses the tie"
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
