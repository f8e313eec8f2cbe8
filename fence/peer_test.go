package fence

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/clock"
)

// outdater stands in for replication, which does not exist in this
// package: it answers OutdatePeer with a fixed result and counts calls.
type outdater struct {
	res   OutdateResult
	err   error
	calls int
}

func (o *outdater) OutdatePeer(_ context.Context, resource, peer string) (OutdateResult, error) {
	o.calls++
	return o.res, o.err
}

func peerReq() PeerRequest {
	return PeerRequest{Resource: "r0", Peer: "node-b", PeerNodeID: 1, Policy: PolicyResourceAndStonith, PeerRole: RoleSecondary, Local: "node-a"}
}

func TestFencePeerOutdateAnswers(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi-b", []string{"node-b"}, nil)
	f := r.start(Options{})
	cases := []struct {
		res  OutdateResult
		want PeerExit
	}{
		{OutdateDone, PeerOutdated},
		{OutdateInconsistent, PeerInconsistent},
		{OutdateRefusedPrimary, PeerIsPrimary},
	}
	for _, c := range cases {
		got := f.FencePeer(context.Background(), peerReq(), &outdater{res: c.res})
		if got.Exit != c.want {
			t.Errorf("outdate result %d: exit %d (%s), want %d", c.res, got.Exit, got.Detail, c.want)
		}
	}
	if len(a.PowerCalls()) != 0 {
		t.Fatal("fenced a peer that could be outdated")
	}
}

// Unreachable under resource-and-stonith: the peer is fenced (7). The
// history names replication and the reason.
func TestFencePeerUnreachableIsStonithed(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi-b", []string{"node-b"}, nil)
	f := r.start(Options{})
	for _, out := range []Outdater{&outdater{res: OutdateUnreachable}, &outdater{err: errors.New("raft: no leader")}, nil} {
		got := f.FencePeer(context.Background(), peerReq(), out)
		if got.Exit != PeerStonithed || got.Op == 0 {
			t.Fatalf("exit %d (%s), want 7", got.Exit, got.Detail)
		}
	}
	if a.Power("node-b") != "on" || len(a.PowerCalls()) != 6 {
		t.Fatalf("calls %q: want three reboots (the default peer action)", a.PowerCalls())
	}
	op := f.History(HistoryQuery{Limit: 2})[1]
	if op.Requesters[0].Origin != "node-a/replication r0" || !strings.Contains(op.Requesters[0].Reason, "fence-peer for r0: outdating the peer failed: raft: no leader") {
		t.Fatalf("history requester %+v", op.Requesters[0])
	}
}

func TestFencePeerResourceOnlyDoesNotFence(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi-b", []string{"node-b"}, nil)
	f := r.start(Options{})
	rq := peerReq()
	rq.Policy = PolicyResourceOnly
	if got := f.FencePeer(context.Background(), rq, &outdater{res: OutdateUnreachable}); got.Exit != PeerUnreachable {
		t.Fatalf("exit %d, want 5", got.Exit)
	}
	if len(a.Calls()) != 1 { // metadata only
		t.Fatalf("agent called: %q", a.Calls())
	}
}

// A failed fence must not unfreeze I/O: exit 1, never 5.
func TestFencePeerFailedFenceKeepsIOFrozen(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi-b", []string{"node-b"}, nil, func(d *DeviceConfig) { d.Retries = 0 })
	a.Set("fail-off", "always")
	f := r.start(Options{})
	got := f.FencePeer(context.Background(), peerReq(), nil)
	if got.Exit != PeerFenceFailed || !strings.Contains(got.Detail, "fencing node-b failed") {
		t.Fatalf("exit %d (%s), want 1", got.Exit, got.Detail)
	}
	bad := peerReq()
	bad.Policy = "dont-care"
	if got := f.FencePeer(context.Background(), bad, nil); got.Exit != PeerFenceFailed || !strings.Contains(got.Detail, `policy "dont-care"`) {
		t.Fatalf("invalid request: %+v", got)
	}
}

// A peer that was primary is fenced only after the priority delay.
func TestFencePeerPrimaryPeerGetsPriorityDelay(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi-b", []string{"node-b"}, nil)
	r.cfg.PriorityDelay = 20 * time.Second
	r.cfg.PeerAction = "off"
	fc := clock.NewFake(time.Unix(1000, 0))
	f := r.start(Options{Clock: fc})
	rq := peerReq()
	rq.PeerRole = RolePrimary
	done := make(chan PeerResult, 1)
	go func() { done <- f.FencePeer(context.Background(), rq, nil) }()
	waitPending(t, fc, 1)
	if len(a.PowerCalls()) != 0 {
		t.Fatal("primary peer fenced before the priority delay")
	}
	fc.Advance(20 * time.Second)
	if got := <-done; got.Exit != PeerStonithed || a.Power("node-b") != "off" {
		t.Fatalf("exit %+v, power %s", got, a.Power("node-b"))
	}
}

func TestParsePeerEnv(t *testing.T) {
	r, err := ParsePeerEnv([]string{"REPLICAD_RESOURCE=r0", "REPLICAD_PEER_NODE=node-b", "REPLICAD_PEER_NODE_ID=1",
		"REPLICAD_FENCING=resource-only", "REPLICAD_PEER_ROLE=primary", "REPLICAD_FENCE_ACTION=off", "REPLICAD_LOCAL_NODE=node-a", "PATH=/bin"})
	want := PeerRequest{Resource: "r0", Peer: "node-b", PeerNodeID: 1, Policy: PolicyResourceOnly, PeerRole: RolePrimary, Action: ActionOff, Local: "node-a"}
	if err != nil || r != want {
		t.Fatalf("ParsePeerEnv = %+v, %v", r, err)
	}
	// DRBD 9's handler environment works as is.
	r, err = ParsePeerEnv([]string{"DRBD_RESOURCE=r1", "DRBD_PEER_NODE_ID=2", "DRBD_NODE_ID_2=node-c", "DRBD_NODE_ID_0=node-a", "DRBD_MINOR=0"})
	want = PeerRequest{Resource: "r1", Peer: "node-c", PeerNodeID: 2, Policy: PolicyResourceAndStonith, PeerRole: RoleUnknown}
	if err != nil || r != want {
		t.Fatalf("ParsePeerEnv(DRBD) = %+v, %v", r, err)
	}
	for env, msg := range map[string]string{
		"REPLICAD_PEER_NODE=node-b":                                             "REPLICAD_RESOURCE (or DRBD_RESOURCE) is not set",
		"REPLICAD_RESOURCE=r0":                                                  "REPLICAD_PEER_NODE is not set",
		"REPLICAD_RESOURCE=r0\nREPLICAD_PEER_NODE_ID=x":                         `peer node id "x"`,
		"REPLICAD_RESOURCE=r0\nREPLICAD_PEER_NODE=n\nREPLICAD_FENCE_ACTION=on":  `action "on"`,
		"REPLICAD_RESOURCE=r0\nREPLICAD_PEER_NODE=n\nREPLICAD_PEER_ROLE=leader": `peer role "leader"`,
	} {
		_, err := ParsePeerEnv(strings.Split(env, "\n"))
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParsePeerEnv(%q) = %v, want %q", env, err, msg)
		}
	}
}
