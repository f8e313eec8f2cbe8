package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/nbd"
	"github.com/replicad/replicad/replication"
	"github.com/replicad/replicad/replication/disk"
)

type running struct {
	d      *Daemon
	info   Info
	client *control.Client
	stop   func()
}

func testConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.Node.Name = "test"
	cfg.Control.Socket = filepath.Join(dir, "control.sock")
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.NBD.Listen = []string{"tcp://127.0.0.1:0", "unix://" + filepath.Join(dir, "nbd.sock")}
	a := DefaultVolume()
	a.Name, a.Device, a.Size = "alpha", filepath.Join(dir, "alpha.img"), 64<<20
	b := DefaultVolume()
	b.Name, b.Device, b.Meta, b.Size = "beta", filepath.Join(dir, "beta.img"), filepath.Join(dir, "beta.md"), 32<<20
	cfg.Volumes = []VolumeConfig{a, b}
	return cfg
}

func start(t *testing.T, cfg Config, with ...func(*Options)) *running {
	t.Helper()
	ready := make(chan Info, 1)
	opts := Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test", Ready: func(i Info) { ready <- i }}
	for _, f := range with {
		f(&opts)
	}
	d, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var info Info
	select {
	case info = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("daemon exited before ready: %v", err)
	}
	r := &running{d: d, info: info, client: control.NewClient(cfg.Control.Socket)}
	var once bool
	r.stop = func() {
		if once {
			return
		}
		once = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(r.stop)
	return r
}

func volumeState(t *testing.T, c *control.Client, name string) control.Volume {
	t.Helper()
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range st.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("volume %s missing from status", name)
	return control.Volume{}
}

func TestVolumeLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := testConfig(dir)
	r := start(t, cfg)
	c := r.client

	// Without metadata the volumes are unconfigured, with a hint.
	a := volumeState(t, c, "alpha")
	if a.State != control.StateError && a.State != control.StateUnconfigured {
		t.Fatalf("alpha before create-md: %+v", a)
	}
	if _, err := c.Up(ctx, "alpha"); err == nil {
		t.Fatal("up without metadata succeeded")
	}
	if _, err := c.CreateMD(ctx, "nope", false); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("create-md of an unknown volume: %v", err)
	}
	md, err := c.CreateMD(ctx, "alpha", false)
	if err != nil {
		t.Fatal(err)
	}
	// Down, with metadata: detached, as DRBD names it.
	if a := volumeState(t, c, "alpha"); a.State != control.StateDown || a.Disk != "Diskless" || a.Role != "Secondary" {
		t.Fatalf("alpha after create-md: %+v", a)
	}
	if !md.Internal || md.DataSize <= 0 || md.DataSize >= 64<<20 {
		t.Fatalf("create-md: %+v", md)
	}
	mdb, err := c.CreateMD(ctx, "beta", false)
	if err != nil || mdb.Internal || mdb.DataSize != 32<<20 {
		t.Fatalf("external create-md: %+v %v", mdb, err)
	}
	if _, err := c.CreateMD(ctx, "alpha", false); !isStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second create-md: %v", err)
	}
	up, err := c.Up(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	if up.State != control.StateUp || up.Disk != "UpToDate" || up.Role != "Primary" || len(up.Exports) != 2 {
		t.Fatalf("after up: %+v", up)
	}
	if _, err := c.CreateMD(ctx, "alpha", true); !isStatus(err, http.StatusConflict) {
		t.Fatalf("create-md --force on an up volume: %v", err)
	}
	if _, err := c.Up(ctx, "beta"); err != nil {
		t.Fatal(err)
	}

	// I/O over both listeners.
	var tcpAddr, unixPath string
	for _, l := range r.info.NBD {
		if l.Network == "tcp" {
			tcpAddr = l.Addr
		} else {
			unixPath = l.Addr
		}
	}
	nc, err := nbd.Dial(ctx, "tcp", tcpAddr, "alpha", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := bytes.Repeat([]byte("alpha!"), 1000)
	if err := nc.WriteAt(ctx, p, 12345, false); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := volumeState(t, c, "alpha").Connections; got != 1 {
		t.Fatalf("status shows %d connections, want 1", got)
	}
	uc, err := nbd.Dial(ctx, "unix", unixPath, "beta", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := uc.WriteAt(ctx, p, 0, true); err != nil {
		t.Fatal(err)
	}
	uc.Close()
	// With two volumes up the empty export name is ambiguous.
	if _, err := nbd.Dial(ctx, "tcp", tcpAddr, "", nil); err == nil {
		t.Fatal("empty export name resolved with two volumes up")
	}

	// Metrics count the I/O.
	resp, err := http.Get(r.info.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`replicad_volume_requests_total{op="write",result="ok",volume="alpha"} 1`,
		`replicad_volume_bytes_total{op="write",volume="alpha"} 6000`,
		`replicad_volume_request_duration_seconds_count{op="flush",volume="alpha"} 1`,
		`replicad_volume_up{volume="alpha"} 1`,
		`replicad_nbd_connections{volume="alpha"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Down closes the connection and detaches cleanly.
	if _, err := c.Down(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	if err := nc.ReadAt(ctx, make([]byte, 10), 0); err == nil {
		t.Fatal("NBD connection survived down")
	}
	if v := volumeState(t, c, "alpha"); v.State != control.StateDown || len(v.Exports) != 0 {
		t.Fatalf("after down: %+v", v)
	}
	// Now only beta is up: the empty export name finds it.
	ec, err := nbd.Dial(ctx, "tcp", tcpAddr, "", nil)
	if err != nil {
		t.Fatalf("empty export name with one volume up: %v", err)
	}
	ec.Close()
	if _, err := c.Up(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	nc, err = nbd.Dial(ctx, "tcp", tcpAddr, "alpha", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(p))
	if err := nc.ReadAt(ctx, got, 12345); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("data after down/up: %v", err)
	}
	nc.Close()

	// Shutdown detaches cleanly: the next attach replays nothing.
	r.stop()
	dev, err := disk.Open(cfg.Volumes[0].Device, disk.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vol, rep, err := replication.Attach("alpha", replication.Devices{Data: dev}, replication.AttachOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer vol.Close()
	if rep.CrashedPrimary || rep.ALReplayed != 0 {
		t.Fatalf("attach after a clean shutdown: %+v", rep)
	}
}

func isStatus(err error, status int) bool {
	var api *control.APIError
	return errors.As(err, &api) && api.Status == status
}

func TestSecondDaemonOnSameSocketRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Volumes = nil
	start(t, cfg)
	d2, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d2.Run(ctx); err == nil || !strings.Contains(err.Error(), "another replicad is running") {
		t.Fatalf("second daemon on the same control socket: %v", err)
	}
}

func TestUnknownEndpoint(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	r := start(t, cfg)
	err := r.client.Do(context.Background(), http.MethodPost, "/v1/frobnicate", nil, nil)
	if !isStatus(err, http.StatusNotFound) {
		t.Fatalf("unknown endpoint: %v", err)
	}
	err = r.client.Do(context.Background(), http.MethodPost, "/v1/volumes/alpha/create-md", map[string]any{"forse": true}, nil)
	if !isStatus(err, http.StatusBadRequest) || !strings.Contains(err.Error(), "forse") {
		t.Fatalf("typo in request body: %v", err)
	}
}

func TestMaxProcs(t *testing.T) {
	for _, tc := range []struct {
		setting int
		env     bool
		avail   int
		want    int
	}{
		{0, false, 2, 1}, {0, false, 1, 1}, {0, false, 8, 4}, {0, false, 3, 1},
		{3, false, 2, 3}, {0, true, 8, 0}, {2, true, 8, 0},
	} {
		if got := MaxProcs(tc.setting, tc.env, tc.avail); got != tc.want {
			t.Errorf("MaxProcs(%d, env %v, %d CPUs) = %d, want %d", tc.setting, tc.env, tc.avail, got, tc.want)
		}
	}
	c := testConfig(t.TempDir())
	c.Node.MaxProcs = -1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "node.max-procs") {
		t.Fatalf("max-procs -1: %v", err)
	}
}

// TestAttachDiskEvents: up reports the disk Attaching while it reads the
// metadata, then the state it found (or Diskless again when it fails);
// down reports Diskless. Status shows Attaching meanwhile.
func TestAttachDiskEvents(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	r := start(t, cfg)
	c := r.client
	if _, err := c.CreateMD(ctx, "alpha", false); err != nil {
		t.Fatal(err)
	}
	evs := make(chan control.Event, 16)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go c.Stream(sctx, "/v1/events", func(raw json.RawMessage) error {
		var e control.Event
		if err := json.Unmarshal(raw, &e); err == nil && e.What == "disk" {
			evs <- e
		}
		return nil
	})
	// The stream is up once an event published after it arrives.
	deadline := time.Now().Add(10 * time.Second)
	for subscribed := false; !subscribed; {
		r.d.bus.publish(control.Event{Volume: "probe", What: "disk"})
		select {
		case <-evs:
			subscribed = true
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the event stream never delivered")
			}
		}
	}
	if _, err := c.Up(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Down(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Up(ctx, "beta"); err == nil {
		t.Fatal("up of beta without metadata succeeded")
	}
	want := []string{
		"alpha Diskless -> Attaching", "alpha Attaching -> UpToDate", "alpha UpToDate -> Diskless",
		"beta Diskless -> Attaching", "beta Attaching -> Diskless",
	}
	for _, w := range want {
		var got string
		for got == "" || strings.HasPrefix(got, "probe ") {
			select {
			case e := <-evs:
				got = e.Volume + " " + e.Old + " -> " + e.New
			case <-time.After(10 * time.Second):
				t.Fatalf("no disk event %q", w)
			}
		}
		if got != w {
			t.Fatalf("disk event %q, want %q", got, w)
		}
	}

	v := r.d.volumes["alpha"]
	v.mu.Lock()
	v.mu.attaching = true
	v.mu.Unlock()
	if st := r.d.volumeStatus(v); st.Disk != "Attaching" || st.Role != "Secondary" {
		t.Fatalf("status while attaching: %+v", st)
	}
}
