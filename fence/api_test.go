package fence

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDurationJSON(t *testing.T) {
	b, _ := json.Marshal(Duration(90 * time.Second))
	if string(b) != `"1m30s"` {
		t.Fatalf("marshal = %s", b)
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"250ms"`), &d); err != nil || d != Duration(250*time.Millisecond) {
		t.Fatalf("unmarshal = %v %v", d, err)
	}
	if err := json.Unmarshal([]byte(`30`), &d); err == nil {
		t.Fatal("a bare number was accepted as a duration")
	}
}

// The JSON the control API sends, as docs/fencing.md shows it.
func TestAPIShapes(t *testing.T) {
	r := newRig(t)
	r.device("ipmi-b", []string{"node-b"}, nil, func(d *DeviceConfig) {
		d.Params = map[string]string{"ip": "10.0.0.12", "password": "secret"}
	})
	f := r.start(Options{})
	res, err := f.Fence(context.Background(), req("node-b", ActionOff))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	for _, key := range []string{`"id":1`, `"target":"node-b"`, `"action":"off"`, `"state":"success"`, `"requesters":[{"origin":"test/node-b","reason":"test fences node-b","at":`,
		`"started":`, `"completed":`, `"level":1`, `"devices":["ipmi-b"]`, `"steps":[{"level":1,"device":"ipmi-b","port":"node-b","action":"off","attempt":1,"start":`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("result JSON lacks %s:\n%s", key, b)
		}
	}
	b, _ = json.Marshal(DevicesResponse{Devices: f.Devices(), Targets: f.Targets()})
	for _, key := range []string{`"name":"ipmi-b"`, `"agent":"exec"`, `"agent_name":"fence_replicad_test"`, `"params":{"ip":"10.0.0.12","password":"(redacted)"}`,
		`"targets":[{"target":"node-b","port":"node-b"}]`, `"timeout":"30s"`, `"retries":2`, `"verify_interval":"10ms"`, `"targets":["node-b"]`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("devices JSON lacks %s:\n%s", key, b)
		}
	}
	var nr NodeRequest
	if err := json.Unmarshal([]byte(`{"action":"reboot","reason":"r","target_holds_primary":true}`), &nr); err != nil || nr.Action != ActionReboot || !nr.TargetHoldsPrimary {
		t.Fatalf("NodeRequest = %+v %v", nr, err)
	}
}

func TestErrorCodes(t *testing.T) {
	r := newRig(t)
	a := r.device("ipmi-b", []string{"node-b"}, nil, func(d *DeviceConfig) { d.Retries = 0 })
	a.Set("fail-off", "always")
	f := r.start(Options{})
	ctx := context.Background()
	_, errBad := f.Fence(ctx, Request{Target: "node-b", Action: ActionOff})
	_, errTarget := f.Fence(ctx, req("node-x", ActionOff))
	_, errFail := f.Fence(ctx, req("node-b", ActionOff))
	_, errDev := f.Test(ctx, "nope")
	_, errList := f.List(ctx, "nope")
	f.Close()
	_, errClosed := f.Fence(ctx, req("node-b", ActionOff))
	for err, want := range map[error]string{errBad: CodeBadRequest, errTarget: CodeUnknownTarget, errFail: CodeFenceFailed,
		errDev: CodeUnknownDevice, errList: CodeUnknownDevice, errClosed: CodeClosed} {
		if got := ErrorCode(err); got != want {
			t.Errorf("ErrorCode(%v) = %s, want %s", err, got, want)
		}
	}
}
