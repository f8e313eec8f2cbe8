package fence

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// PeerExit is a fence-peer handler exit code, as DRBD's drbd_nl.c reads it.
type PeerExit int

// Exit codes. DRBD treats 3..7 as answers; any other code means "handler
// broken" and leaves I/O frozen under resource-and-stonith, which is what a
// failed fence must do. 5 is dangerous: DRBD then marks an UpToDate
// local disk's peer Outdated on the assumption that it is dead, so it is
// returned only under resource-only, which accepts that risk by design.
const (
	// PeerFenceFailed: the peer could not be outdated nor fenced. Keep I/O
	// frozen; do not promote.
	PeerFenceFailed PeerExit = 1
	// PeerInconsistent: the peer's disk is Inconsistent or worse.
	PeerInconsistent PeerExit = 3
	// PeerOutdated: the peer's disk was outdated (or already was).
	PeerOutdated PeerExit = 4
	// PeerUnreachable: the peer could not be reached and the policy is
	// resource-only, so it was not fenced.
	PeerUnreachable PeerExit = 5
	// PeerIsPrimary: the peer is primary and refused to outdate; the local
	// node outdates itself.
	PeerIsPrimary PeerExit = 6
	// PeerStonithed: the peer was fenced (verified off or rebooted, or
	// confirmed down by an operator).
	PeerStonithed PeerExit = 7
)

func (e PeerExit) String() string {
	switch e {
	case PeerFenceFailed:
		return "fence failed, keep I/O frozen"
	case PeerInconsistent:
		return "peer inconsistent"
	case PeerOutdated:
		return "peer outdated"
	case PeerUnreachable:
		return "peer unreachable"
	case PeerIsPrimary:
		return "peer is primary, outdate yourself"
	case PeerStonithed:
		return "peer stonithed"
	}
	return fmt.Sprintf("exit %d", int(e))
}

// Fencing policies of a replicated volume (DRBD's "fencing" option).
const (
	PolicyResourceOnly       = "resource-only"
	PolicyResourceAndStonith = "resource-and-stonith"
)

// Peer roles as last known by the local node.
const (
	RolePrimary   = "primary"
	RoleSecondary = "secondary"
	RoleUnknown   = "unknown"
)

// PeerRequest is what replication's fence-peer handler passes on.
type PeerRequest struct {
	// Resource is the replicated volume.
	Resource string `json:"resource"`
	// Peer is the peer's node name: the fence target.
	Peer string `json:"peer"`
	// PeerNodeID is the peer's node id, -1 if unknown.
	PeerNodeID int `json:"peer_node_id"`
	// Policy is resource-only or resource-and-stonith.
	Policy string `json:"policy"`
	// PeerRole is the peer's last known role; "primary" applies the
	// priority delay (the primary's holder wins a fence race).
	PeerRole string `json:"peer_role"`
	// Action is off or reboot; empty takes Config.PeerAction.
	Action Action `json:"action,omitempty"`
	// Local names the node asking, for the history.
	Local string `json:"local,omitempty"`
}

// OutdateResult is what outdating the peer found.
type OutdateResult int

const (
	// OutdateUnreachable: the peer could not be reached by any path.
	OutdateUnreachable OutdateResult = iota
	// OutdateDone: the peer's disk is now (or already was) Outdated.
	OutdateDone
	// OutdateInconsistent: the peer's disk is Inconsistent or worse.
	OutdateInconsistent
	// OutdateRefusedPrimary: the peer is primary and refused.
	OutdateRefusedPrimary
)

// Outdater is how replication outdates a peer over a path other than the
// lost replication link (the cluster state, another network). Replication
// implements it; FencePeer takes nil when there is no such path.
type Outdater interface {
	OutdatePeer(ctx context.Context, resource, peer string) (OutdateResult, error)
}

// PeerFencer is the part of *Fencer the adapter needs.
type PeerFencer interface {
	Fence(ctx context.Context, r Request) (Result, error)
}

var _ PeerFencer = (*Fencer)(nil)

// PeerResult is FencePeer's answer.
type PeerResult struct {
	Exit   PeerExit `json:"exit"`
	Detail string   `json:"detail"`
	// Op is the fence operation's id when one ran.
	Op uint64 `json:"op,omitempty"`
}

// FencePeer is replication's fence-peer step with this Fencer and the
// configured peer action.
func (f *Fencer) FencePeer(ctx context.Context, r PeerRequest, out Outdater) PeerResult {
	return FencePeer(ctx, r, out, f, Action(f.cfg.PeerAction))
}

// CheckPeerRequest reports every problem of r, wrapped in ErrBadRequest.
func CheckPeerRequest(r PeerRequest) error {
	var errs []error
	if r.Resource == "" {
		errs = append(errs, fmt.Errorf("%w: resource is empty", ErrBadRequest))
	}
	if err := checkNodeName(r.Peer); err != nil {
		errs = append(errs, fmt.Errorf("%w: peer: %v", ErrBadRequest, err))
	}
	if r.Policy != PolicyResourceOnly && r.Policy != PolicyResourceAndStonith {
		errs = append(errs, fmt.Errorf("%w: policy %q; want %s or %s", ErrBadRequest, r.Policy, PolicyResourceOnly, PolicyResourceAndStonith))
	}
	switch r.PeerRole {
	case RolePrimary, RoleSecondary, RoleUnknown:
	default:
		errs = append(errs, fmt.Errorf("%w: peer role %q; want primary, secondary or unknown", ErrBadRequest, r.PeerRole))
	}
	if r.Action != "" && r.Action != ActionOff && r.Action != ActionReboot {
		errs = append(errs, fmt.Errorf("%w: action %q; want off or reboot", ErrBadRequest, r.Action))
	}
	return errors.Join(errs...)
}

// FencePeer outdates the peer, or fences it, and answers with DRBD's
// fence-peer exit codes:
//
//  1. With an Outdater, ask the peer to outdate itself: outdated → 4,
//     inconsistent → 3, primary and refusing → 6. Unreachable (or an
//     error) goes on.
//  2. resource-only: 5, the peer is not fenced.
//  3. resource-and-stonith: fence the peer (action from r or
//     defaultAction; priority delay if it was primary) → 7, or 1 if that
//     failed so that I/O stays frozen.
//
// An invalid request answers 1: never unfreeze on a malformed call.
func FencePeer(ctx context.Context, r PeerRequest, out Outdater, f PeerFencer, defaultAction Action) PeerResult {
	if err := CheckPeerRequest(r); err != nil {
		return PeerResult{Exit: PeerFenceFailed, Detail: err.Error()}
	}
	why := "peer unreachable"
	if out != nil {
		res, err := out.OutdatePeer(ctx, r.Resource, r.Peer)
		switch {
		case err != nil:
			why = fmt.Sprintf("outdating the peer failed: %v", err)
		case res == OutdateDone:
			return PeerResult{Exit: PeerOutdated, Detail: fmt.Sprintf("%s on %s outdated", r.Resource, r.Peer)}
		case res == OutdateInconsistent:
			return PeerResult{Exit: PeerInconsistent, Detail: fmt.Sprintf("%s on %s is inconsistent", r.Resource, r.Peer)}
		case res == OutdateRefusedPrimary:
			return PeerResult{Exit: PeerIsPrimary, Detail: fmt.Sprintf("%s is primary on %s and refused to outdate; outdate the local disk", r.Resource, r.Peer)}
		default:
			why = "peer unreachable for outdating"
		}
	}
	if r.Policy == PolicyResourceOnly {
		return PeerResult{Exit: PeerUnreachable, Detail: why + "; policy resource-only does not fence"}
	}
	action := r.Action
	if action == "" {
		action = defaultAction
	}
	origin := "replication " + r.Resource
	if r.Local != "" {
		origin = r.Local + "/" + origin
	}
	res, err := f.Fence(ctx, Request{
		Target: r.Peer, Action: action, Origin: origin,
		Reason:             fmt.Sprintf("fence-peer for %s: %s", r.Resource, why),
		TargetHoldsPrimary: r.PeerRole == RolePrimary,
	})
	if err != nil {
		return PeerResult{Exit: PeerFenceFailed, Detail: fmt.Sprintf("%s; fencing %s failed: %v", why, r.Peer, err), Op: res.ID}
	}
	return PeerResult{Exit: PeerStonithed, Detail: fmt.Sprintf("%s; fenced %s by %s (op %d, %s)", why, r.Peer, action, res.ID, res.State), Op: res.ID}
}

// ParsePeerEnv reads a fence-peer handler's environment (KEY=VALUE
// entries, as os.Environ returns them). It understands replicad's
// variables and, as fallbacks, those DRBD 9 passes to its handlers, so the
// same command can serve as DRBD's fence-peer handler:
//
//	REPLICAD_RESOURCE      volume (fallback DRBD_RESOURCE)            required
//	REPLICAD_PEER_NODE     peer node name, the fence target           required
//	                       (fallback DRBD_NODE_ID_<DRBD_PEER_NODE_ID>)
//	REPLICAD_PEER_NODE_ID  peer node id (fallback DRBD_PEER_NODE_ID)  optional
//	REPLICAD_FENCING       resource-only | resource-and-stonith       default resource-and-stonith
//	REPLICAD_PEER_ROLE     primary | secondary | unknown              default unknown
//	REPLICAD_FENCE_ACTION  off | reboot                               default fence.peer-action
//	REPLICAD_LOCAL_NODE    this node's name, for the history          optional
func ParsePeerEnv(env []string) (PeerRequest, error) {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	get := func(keys ...string) string {
		for _, k := range keys {
			if v := vars[k]; v != "" {
				return v
			}
		}
		return ""
	}
	r := PeerRequest{
		Resource:   get("REPLICAD_RESOURCE", "DRBD_RESOURCE"),
		Peer:       get("REPLICAD_PEER_NODE"),
		PeerNodeID: -1,
		Policy:     get("REPLICAD_FENCING"),
		PeerRole:   get("REPLICAD_PEER_ROLE"),
		Action:     Action(get("REPLICAD_FENCE_ACTION")),
		Local:      get("REPLICAD_LOCAL_NODE"),
	}
	var errs []error
	if id := get("REPLICAD_PEER_NODE_ID", "DRBD_PEER_NODE_ID"); id != "" {
		n, err := strconv.Atoi(id)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%w: peer node id %q is not a node id", ErrBadRequest, id))
		} else {
			r.PeerNodeID = n
			if r.Peer == "" {
				r.Peer = vars["DRBD_NODE_ID_"+id]
			}
		}
	}
	if r.Policy == "" {
		r.Policy = PolicyResourceAndStonith
	}
	if r.PeerRole == "" {
		r.PeerRole = RoleUnknown
	}
	if r.Resource == "" {
		errs = append(errs, fmt.Errorf("%w: REPLICAD_RESOURCE (or DRBD_RESOURCE) is not set", ErrBadRequest))
	}
	if r.Peer == "" {
		errs = append(errs, fmt.Errorf("%w: REPLICAD_PEER_NODE is not set (nor DRBD_PEER_NODE_ID with DRBD_NODE_ID_<id>)", ErrBadRequest))
	}
	if err := errors.Join(errs...); err != nil {
		return r, err
	}
	return r, CheckPeerRequest(r)
}
