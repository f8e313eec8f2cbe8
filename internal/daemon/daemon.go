package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/lvs"
	"github.com/replicad/replicad/nbd"
	"github.com/replicad/replicad/replication"
)

// Options are what cmd/replicad passes besides the Config.
type Options struct {
	Logger  *slog.Logger
	Version string
	// Ready, if set, is called once every listener is open and every volume
	// that can come up is up.
	Ready func(Info)
	// LVSBackend, if set, replaces the kernel backend of the load
	// balancer (tests).
	LVSBackend lvs.Backend
}

// Info describes the running daemon's endpoints.
type Info struct {
	// NBD lists the NBD listeners as URIs without an export name:
	// nbd://HOST:PORT/ or nbd+unix:///?socket=PATH.
	NBD           []Listener
	ControlSocket string
	MetricsURL    string
}

// Listener is an open NBD listener.
type Listener struct {
	Network, Addr string
}

// ExportURI is the NBD URI of an export on this listener.
func (l Listener) ExportURI(export string) string {
	if l.Network == "unix" {
		return fmt.Sprintf("nbd+unix:///%s?socket=%s", export, l.Addr)
	}
	host, port, _ := net.SplitHostPort(l.Addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return fmt.Sprintf("nbd://%s/%s", net.JoinHostPort(host, port), export)
}

// Daemon is a running replicad.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	opts    Options
	started time.Time
	volumes map[string]*volume // fixed after New
	order   []string
	metrics *metrics
	nbd     *nbd.Server
	mux     *http.ServeMux
	// transport is nil without a cluster.
	transport *replication.Transport
	bus       *eventBus
	fence     fencing
	lvs       lvsState
	dlm       dlmService

	mu struct {
		sync.Mutex
		listeners []Listener
	}
}

// New validates cfg and prepares a daemon; Run starts it.
func New(cfg Config, opts Options) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if cfg.Node.Name == "" {
		cfg.Node.Name, _ = os.Hostname()
	}
	d := &Daemon{cfg: cfg, log: opts.Logger, opts: opts, volumes: make(map[string]*volume), mux: http.NewServeMux(), bus: newEventBus()}
	for _, vc := range cfg.Volumes {
		v := &volume{cfg: vc}
		v.mu.state = control.StateDown
		d.volumes[vc.Name] = v
		d.order = append(d.order, vc.Name)
	}
	d.metrics = newMetrics(d)
	ncfg := cfg.NBD.serverConfig()
	ncfg.Logger = d.log
	tlsCfg, err := loadTLS(cfg.NBD.TLS)
	if err != nil {
		return nil, err
	}
	ncfg.TLS, ncfg.RequireTLS = tlsCfg, cfg.NBD.TLS.Require
	srv, err := nbd.NewServer(ncfg, exports{d})
	if err != nil {
		return nil, err
	}
	d.nbd = srv
	if d.transport, err = d.newTransport(); err != nil {
		return nil, err
	}
	d.routes()
	d.replicationRoutes()
	return d, nil
}

func loadTLS(t TLSConfig) (*tls.Config, error) {
	if t.Cert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("nbd.tls: load certificate %s and key %s: %w", t.Cert, t.Key, err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCA != "" {
		pem, err := os.ReadFile(t.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("nbd.tls.client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nbd.tls.client-ca: no PEM certificates in %s", t.ClientCA)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// HandleControl registers a control-API endpoint (Go 1.22 mux pattern) for
// a subsystem.
func (d *Daemon) HandleControl(pattern string, h http.Handler) { d.mux.Handle(pattern, h) }

// Run serves until ctx ends, then shuts down cleanly: listeners close, NBD
// connections finish their requests in flight, every volume is detached
// (flushed, bitmap written, activity log marked clean).
func (d *Daemon) Run(ctx context.Context) error {
	d.started = time.Now()
	var wg sync.WaitGroup
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		wg.Wait()
	}()

	ctl, err := listenUnix(d.cfg.Control.Socket, 0o660, true)
	if err != nil {
		return fmt.Errorf("control.socket: %w", err)
	}
	// Fencing starts once the socket is ours (a second replicad stops
	// above, before it opens the fence history) and is ready before the
	// control API answers; it closes after the control server.
	closeFencing, err := d.startFencing(ctx)
	if err != nil {
		ctl.Close()
		os.Remove(d.cfg.Control.Socket)
		return err
	}
	closers = append(closers, closeFencing)
	// The DLM is up before the control API answers; it stops after the
	// volumes are down (closers run in reverse), so no NBD client still
	// writes when its locks go.
	closeDLM, err := d.startDLM(ctx)
	if err != nil {
		ctl.Close()
		os.Remove(d.cfg.Control.Socket)
		return err
	}
	closers = append(closers, closeDLM)
	// ConnContext: the fence history names who asked (SO_PEERCRED).
	ctlSrv := &http.Server{Handler: d.mux, ReadHeaderTimeout: 10 * time.Second, ConnContext: withPeerCred}
	wg.Add(1)
	go func() { defer wg.Done(); ctlSrv.Serve(ctl) }()
	closers = append(closers, func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ctlSrv.Shutdown(c)
		os.Remove(d.cfg.Control.Socket)
	})

	info := Info{ControlSocket: d.cfg.Control.Socket}
	if d.cfg.Metrics.Listen != "" {
		ml, err := net.Listen("tcp", d.cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		wg.Add(1)
		go func() { defer wg.Done(); msrv.Serve(ml) }()
		closers = append(closers, func() { msrv.Close() })
		info.MetricsURL = "http://" + ml.Addr().String() + "/metrics"
	}

	if d.transport != nil {
		rl, err := d.listenReplication(ctx)
		if err != nil {
			return fmt.Errorf("cluster: replication listener on %s: %w", d.replicationListen(), err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); d.transport.Serve(rl) }()
		// Closed after the volumes are down (closers run in reverse).
		closers = append(closers, func() { d.transport.Close() })
	}
	closers = append(closers, d.bus.close)

	stopLVS, err := d.startLVS(ctx)
	if err != nil {
		return err
	}
	closers = append(closers, stopLVS)

	// Volumes come up before NBD listens, so the first client finds them.
	for _, name := range d.order {
		v := d.volumes[name]
		v.op.Lock()
		if err := d.upLocked(v); err != nil {
			d.log.Warn("volume not brought up", "volume", name, "err", err)
		}
		v.op.Unlock()
	}
	closers = append(closers, d.downAll)

	var nbdLs []net.Listener
	for _, addr := range d.cfg.NBD.Listen {
		network, a, _ := ParseListen(addr)
		var l net.Listener
		if network == "unix" {
			l, err = listenUnix(a, 0o660, false)
		} else {
			l, err = net.Listen(network, a)
		}
		if err != nil {
			for _, l := range nbdLs {
				l.Close()
			}
			return fmt.Errorf("nbd.listen %s: %w", addr, err)
		}
		nbdLs = append(nbdLs, l)
		info.NBD = append(info.NBD, Listener{Network: network, Addr: l.Addr().String()})
	}
	for _, l := range nbdLs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.nbd.Serve(l); err != nil && !errors.Is(err, nbd.ErrServerClosed) {
				d.log.Error("nbd listener failed", "addr", l.Addr().String(), "err", err)
			}
		}()
	}
	// Closing the NBD server (listeners, then connections) runs before the
	// volumes are detached: closers run in reverse.
	closers = append(closers, func() {
		d.nbd.Close()
		for _, li := range info.NBD {
			if li.Network == "unix" {
				os.Remove(li.Addr)
			}
		}
	})
	d.mu.Lock()
	d.mu.listeners = info.NBD
	d.mu.Unlock()

	d.log.Info("replicad running", "node", d.cfg.Node.Name, "volumes", len(d.volumes), "control", d.cfg.Control.Socket)
	if d.opts.Ready != nil {
		d.opts.Ready(info)
	}
	<-ctx.Done()
	d.log.Info("shutting down")
	return nil
}

// downAll detaches every volume (at shutdown).
func (d *Daemon) downAll() {
	for _, name := range d.order {
		v := d.volumes[name]
		v.op.Lock()
		d.downLocked(v)
		v.op.Unlock()
	}
}

// listenUnix listens on a unix socket, replacing a stale socket file but
// refusing to take over one a live process answers on.
func listenUnix(path string, mode os.FileMode, exclusive bool) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			if exclusive {
				return nil, fmt.Errorf("%s is in use: another replicad is running", path)
			}
			return nil, fmt.Errorf("%s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Status reports the node and every configured volume.
func (d *Daemon) Status() control.Status {
	st := control.Status{Node: control.Node{Name: d.cfg.Node.Name, ID: d.cfg.Node.ID, Version: d.opts.Version, Started: d.started}}
	for _, name := range d.order {
		st.Volumes = append(st.Volumes, d.volumeStatus(d.volumes[name]))
	}
	return st
}

func (d *Daemon) volumeStatus(v *volume) control.Volume {
	v.mu.Lock()
	vol, attaching := v.mu.vol, v.mu.attaching
	out := control.Volume{
		Name: v.cfg.Name, State: v.mu.state, Error: v.mu.err, Hint: v.mu.hint,
		Device: v.cfg.Device, Meta: v.cfg.Meta, ReadOnly: v.cfg.ReadOnly, Peers: []control.Peer{},
	}
	v.mu.Unlock()
	if vol == nil {
		// Nothing attached: DRBD's detached resource, Secondary and
		// without a disk (or getting one).
		out.Role, out.Disk = "Secondary", string(replication.Diskless)
		if attaching {
			out.Disk = string(replication.Attaching)
		}
		return out
	}
	vs := vol.Status()
	out.Role = "Primary"
	if vs.ReadOnly {
		out.Role = "Secondary"
	}
	out.Disk, out.DiskError, out.Size = string(vs.Disk), vs.DiskError, vs.Size
	v.mu.Lock()
	rep := v.mu.rep
	v.mu.Unlock()
	if rep != nil {
		d.peersStatus(&out, rep)
	}
	if out.Disk == string(replication.Consistent) && out.Hint == "" {
		out.Hint = fmt.Sprintf("the data was UpToDate, but a peer may have moved on since: connecting to a peer settles it, or `repctl primary %s` runs the fence-peer handler for the unreachable peers first", v.cfg.Name)
	}
	out.CurrentUUID, out.Flags, out.ALExtents = vs.CurrentUUID, vs.Flags, vs.ALExtents
	out.Connections = d.nbd.Connections()[v.cfg.Name]
	d.mu.Lock()
	for _, l := range d.mu.listeners {
		out.Exports = append(out.Exports, l.ExportURI(v.cfg.Name))
	}
	d.mu.Unlock()
	return out
}

func (d *Daemon) routes() {
	h := func(f func(r *http.Request) (any, error)) http.Handler { return control.Handle(d.log, f) }
	d.mux.Handle("GET /v1/status", h(func(*http.Request) (any, error) { return d.Status(), nil }))
	d.mux.Handle("GET /v1/volumes/{name}", h(func(r *http.Request) (any, error) {
		v, err := d.volume(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		return d.volumeStatus(v), nil
	}))
	d.mux.Handle("POST /v1/volumes/{name}/create-md", h(func(r *http.Request) (any, error) {
		var req control.CreateMDRequest
		if err := control.DecodeBody(r, &req); err != nil {
			return nil, err
		}
		return d.CreateMD(r.PathValue("name"), req.Force)
	}))
	d.mux.Handle("POST /v1/volumes/{name}/up", h(func(r *http.Request) (any, error) { return d.Up(r.PathValue("name")) }))
	d.mux.Handle("POST /v1/volumes/{name}/down", h(func(r *http.Request) (any, error) { return d.Down(r.PathValue("name")) }))
	d.fenceRoutes()
	d.lvsRoutes()
	d.dlmRoutes()
	d.mux.Handle("/", h(func(r *http.Request) (any, error) {
		return nil, control.Errorf(http.StatusNotFound, "repctl and replicad may be different versions", "no endpoint %s %s", r.Method, r.URL.Path)
	}))
}
