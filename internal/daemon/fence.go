package daemon

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/replicad/replicad/fence"
	"github.com/replicad/replicad/fence/agentproto"
	"github.com/replicad/replicad/internal/control"
)

// This file wires fence/ into the daemon: the Fencer's lifetime and the
// /v1/fence/ endpoints of the control API (docs/fencing.md lists them).
// Without a fence section every endpoint answers 404 not_configured,
// except fence-peer, which answers as a handler whose fencing failed.

// fencing holds the daemon's Fencer; nil until Run starts it, and when no
// fence section is configured.
type fencing struct {
	f atomic.Pointer[fence.Fencer]
}

// CodeNotConfigured is the error code of every fence endpoint when the
// configuration has no fence section.
const CodeNotConfigured = "not_configured"

// startFencing builds the Fencer (checking every exec agent's metadata and
// opening the history) and returns its closer.
func (d *Daemon) startFencing(ctx context.Context) (func(), error) {
	if d.cfg.Fence == nil {
		return func() {}, nil
	}
	f, err := fence.New(ctx, *d.cfg.Fence, fence.Options{Logger: d.log.With("subsystem", "fence")})
	if err != nil {
		return nil, err
	}
	d.fence.f.Store(f)
	d.log.Info("fencing ready", "devices", len(f.Devices()), "targets", strings.Join(f.Targets(), ","), "history", d.cfg.Fence.HistoryPath)
	return func() {
		d.fence.f.Store(nil)
		if err := f.Close(); err != nil {
			d.log.Error("closing fencing", "err", err)
		}
	}, nil
}

// Fencer is the daemon's Fencer for other subsystems (CRM, replication);
// nil when fencing is not configured or the daemon is not running.
func (d *Daemon) Fencer() *fence.Fencer { return d.fence.f.Load() }

func (d *Daemon) fenceRoutes() {
	h := func(f func(r *http.Request, fc *fence.Fencer) (any, error)) http.Handler {
		return control.Handle(d.log, func(r *http.Request) (any, error) {
			fc := d.fence.f.Load()
			if fc == nil {
				return nil, &control.StatusError{Status: http.StatusNotFound, Code: CodeNotConfigured,
					Err:  fmt.Errorf("fencing is not configured on %s", d.cfg.Node.Name),
					Hint: "add a fence: section with devices to replicad's configuration (see docs/fencing.md) and restart replicad"}
			}
			return f(r, fc)
		})
	}
	d.mux.Handle("GET /v1/fence/devices", h(func(_ *http.Request, fc *fence.Fencer) (any, error) {
		return fence.DevicesResponse{Devices: fc.Devices(), Targets: nonNil(fc.Targets())}, nil
	}))
	d.mux.Handle("GET /v1/fence/devices/{name}/metadata", h(func(r *http.Request, fc *fence.Fencer) (any, error) {
		m, err := fc.Metadata(r.PathValue("name"))
		if err != nil {
			return nil, fenceError(err, r.PathValue("name"), fc)
		}
		return m, nil
	}))
	d.mux.Handle("POST /v1/fence/devices/{name}/test", h(func(r *http.Request, fc *fence.Fencer) (any, error) {
		res, err := fc.Test(r.Context(), r.PathValue("name"))
		if err != nil {
			return nil, fenceError(err, r.PathValue("name"), fc)
		}
		return res, nil
	}))
	d.mux.Handle("POST /v1/fence/devices/{name}/list", h(func(r *http.Request, fc *fence.Fencer) (any, error) {
		plugs, err := fc.List(r.Context(), r.PathValue("name"))
		if err != nil {
			return nil, fenceError(err, r.PathValue("name"), fc)
		}
		return PlugsResponse{Plugs: nonNil(plugs)}, nil
	}))
	d.mux.Handle("POST /v1/fence/nodes/{node}/fence", h(func(r *http.Request, fc *fence.Fencer) (any, error) {
		var req fence.NodeRequest
		if err := control.DecodeBody(r, &req); err != nil {
			return nil, err
		}
		node := r.PathValue("node")
		// The operation goes on if the client leaves (Fence returns
		// ErrStillRunning); its end is in the history.
		res, err := fc.Fence(r.Context(), fence.Request{Target: node, Action: req.Action,
			Origin: d.requester(r), Reason: req.Reason, TargetHoldsPrimary: req.TargetHoldsPrimary})
		if err != nil {
			return nil, fenceError(err, node, fc, res)
		}
		d.tellDLMFenced(fc, node)
		return res, nil
	}))
	d.mux.Handle("POST /v1/fence/nodes/{node}/confirm", h(func(r *http.Request, fc *fence.Fencer) (any, error) {
		var req fence.ConfirmRequest
		if err := control.DecodeBody(r, &req); err != nil {
			return nil, err
		}
		node := r.PathValue("node")
		res, err := fc.Confirm(r.Context(), node, d.requester(r), req.Reason)
		if err != nil {
			return nil, fenceError(err, node, fc, res)
		}
		d.tellDLMFenced(fc, node)
		return res, nil
	}))
	d.mux.Handle("GET /v1/fence/history", h(func(r *http.Request, fc *fence.Fencer) (any, error) {
		q, err := historyQuery(r)
		if err != nil {
			return nil, err
		}
		return fence.HistoryResponse{Operations: nonNil(fc.History(q))}, nil
	}))
	d.mux.Handle("POST /v1/fence/peer", control.Handle(d.log, func(r *http.Request) (any, error) {
		var req fence.PeerRequest
		if err := control.DecodeBody(r, &req); err != nil {
			// A malformed call never unfreezes I/O.
			return fence.PeerResult{Exit: fence.PeerFenceFailed, Detail: err.Error()}, nil
		}
		if req.Local == "" {
			req.Local = d.cfg.Node.Name
		}
		if fc := d.fence.f.Load(); fc != nil {
			res := fc.FencePeer(r.Context(), req, nil)
			d.tellDLMFenced(fc, req.Peer)
			return res, nil
		}
		return fence.FencePeer(r.Context(), req, nil, notConfigured{d.cfg.Node.Name}, fence.ActionReboot), nil
	}))
}

// PlugsResponse answers POST /v1/fence/devices/{name}/list.
type PlugsResponse struct {
	Plugs []agentproto.Plug `json:"plugs"`
}

// notConfigured answers fence-peer's fence step when there is no fence
// section: the fence fails, so under resource-and-stonith I/O stays frozen.
type notConfigured struct{ node string }

var _ fence.PeerFencer = notConfigured{}

func (n notConfigured) Fence(context.Context, fence.Request) (fence.Result, error) {
	return fence.Result{}, fmt.Errorf("%w: fencing is not configured on %s", fence.ErrFenceFailed, n.node)
}

// historyQuery reads ?target=&since=RFC3339&limit=N.
func historyQuery(r *http.Request) (fence.HistoryQuery, error) {
	var q fence.HistoryQuery
	v := r.URL.Query()
	q.Target = v.Get("target")
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, &control.StatusError{Status: http.StatusBadRequest, Code: fence.CodeBadRequest,
				Err: fmt.Errorf("since=%q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", s)}
		}
		q.Since = t
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return q, &control.StatusError{Status: http.StatusBadRequest, Code: fence.CodeBadRequest,
				Err: fmt.Errorf("limit=%q: want a number of operations, 0 for all", s)}
		}
		q.Limit = n
	}
	return q, nil
}

// fenceError turns a Fencer error into a control error with the fence code,
// its HTTP status and what to do next. name is the device or node the
// request was about; res, if given, is what a failed operation did.
func fenceError(err error, name string, fc *fence.Fencer, res ...fence.Result) error {
	code := fence.ErrorCode(err)
	se := &control.StatusError{Status: http.StatusInternalServerError, Err: err, Code: code}
	switch code {
	case fence.CodeBadRequest:
		se.Status = http.StatusBadRequest
	case fence.CodeUnknownTarget:
		se.Status = http.StatusNotFound
		se.Err = fmt.Errorf("no fence device can fence %s (configured targets: %s)", name, listOrNone(fc.Targets()))
		se.Hint = "add it to a device's hosts or host-map in the fence section, or check the node name"
	case fence.CodeUnknownDevice:
		se.Status = http.StatusNotFound
		var names []string
		for _, d := range fc.Devices() {
			names = append(names, d.Name)
		}
		se.Err = fmt.Errorf("no fence device %q (configured: %s)", name, listOrNone(names))
		se.Hint = "see 'repctl fence list'"
	case fence.CodeUnsupported:
		se.Status = http.StatusBadRequest
	case fence.CodeFenceFailed:
		se.Status = http.StatusBadGateway
		se.Hint = fmt.Sprintf("%s is NOT fenced; check the devices with 'repctl fence test DEVICE', or, once you have verified %s is down by hand, 'repctl fence confirm %s --reason …'", name, name, name)
	case fence.CodeStillRunning:
		se.Status = http.StatusGatewayTimeout
		se.Hint = fmt.Sprintf("the operation goes on; see 'repctl fence history %s'", name)
	case fence.CodeClosed:
		se.Status = http.StatusServiceUnavailable
		se.Hint = "replicad is shutting down"
	case fence.CodeHistory:
		se.Hint = "the fence history could not be written; check the disk holding fence.history-path"
	}
	if len(res) > 0 && res[0].ID != 0 && (code == fence.CodeFenceFailed || code == fence.CodeHistory) {
		se.Detail = res[0]
	}
	return se
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// nonNil makes empty lists encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
