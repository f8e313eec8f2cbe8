package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/replication"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/uuid"
)

// newTransport builds the replication transport when the cluster has nodes.
func (d *Daemon) newTransport() (*replication.Transport, error) {
	cl := d.cfg.Cluster
	if len(cl.Nodes) == 0 {
		return nil, nil
	}
	secret, err := d.clusterSecret()
	if err != nil {
		return nil, err
	}
	peers, names := map[uint32]string{}, map[uint32]string{}
	for _, n := range cl.Nodes {
		if n.Name != d.cfg.Node.Name {
			peers[n.ID], names[n.ID] = n.Address, n.Name
		}
	}
	tc := replication.TransportConfig{NodeID: d.cfg.Node.ID, Secret: secret, Peers: peers, PeerNames: names, Logger: d.log}
	if t := cl.TLS; t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("cluster.tls: %w", err)
		}
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("cluster.tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster.tls.ca: no PEM certificates in %s", t.CA)
		}
		tc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	}
	return replication.NewTransport(tc)
}

// replicationListen is where this node accepts peers.
func (d *Daemon) replicationListen() string {
	if l := d.cfg.Cluster.Listen; l != "" {
		_, addr, _ := ParseListen(l)
		return addr
	}
	for _, n := range d.cfg.Cluster.Nodes {
		if n.Name == d.cfg.Node.Name {
			return n.Address
		}
	}
	return ""
}

// defaultFencePeerHandler is `repctl fence peer`, found beside the running
// replicad if it is there (packages install both together), else on PATH.
func defaultFencePeerHandler() string {
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "repctl"); fileExists(p) {
			return p + " fence peer"
		}
	}
	return "repctl fence peer"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func (d *Daemon) nodeID(name string) (uint32, bool) {
	for _, n := range d.cfg.Cluster.Nodes {
		if n.Name == name {
			return n.ID, true
		}
	}
	return 0, false
}

func (d *Daemon) nodeName(id uint32) string {
	for _, n := range d.cfg.Cluster.Nodes {
		if n.ID == id {
			return n.Name
		}
	}
	return fmt.Sprintf("node%d", id)
}

func (d *Daemon) replicatorConfig(v VolumeConfig) replication.ReplicatorConfig {
	r := v.Replication
	c := replication.DefaultReplicatorConfig()
	c.NodeID = d.cfg.Node.ID
	for _, p := range r.Peers {
		id, _ := d.nodeID(p)
		c.Peers = append(c.Peers, id)
	}
	c.Protocol = r.Protocol[0]
	c.Checksums = r.ResyncChecksums
	c.Policies = uuid.Policies{After0Pri: r.After0Pri, After1Pri: r.After1Pri, After2Pri: r.After2Pri}
	c.AllowTwoPrimaries = r.AllowTwoPrimaries
	c.SplitBrainHandler = r.SplitBrainHandler
	c.Fencing, _ = engine.ParseFencePolicy(r.Fencing)
	c.Quorum, _ = engine.ParseQuorum(r.Quorum)
	c.OnNoQuorum, _ = engine.ParseOnNoQuorum(r.OnNoQuorum)
	c.FencePeerHandler = r.FencePeerHandler
	if c.FencePeerHandler == "" && c.Fencing != engine.DontCare {
		c.FencePeerHandler = defaultFencePeerHandler()
	}
	c.NodeNames = map[uint32]string{}
	for _, n := range d.cfg.Cluster.Nodes {
		c.NodeNames[n.ID] = n.Name
	}
	c.LocalName, c.ControlSocket = d.cfg.Node.Name, d.cfg.Control.Socket
	c.Compression, c.Timeout, c.KoCount = r.Compression, r.Timeout, r.KoCount
	c.ResyncRate = r.ResyncRate
	if r.ResyncDelayTarget > 0 {
		c.ResyncDelayTarget = r.ResyncDelayTarget
	}
	c.PingInterval, c.PingTimeout, c.ConnectInterval = r.PingInterval, r.PingTimeout, r.ConnectInterval
	c.Logger = d.log
	return c
}

// newReplication makes a volume's replicator and forwards its events; the
// caller starts it.
func (d *Daemon) newReplication(v *volume, vol *replication.Volume) (*replication.Replicator, error) {
	rep, err := replication.NewReplicator(v.cfg.Name, vol, d.transport, d.replicatorConfig(v.cfg))
	if err != nil {
		return nil, err
	}
	ch := rep.Subscribe()
	v.events = ch
	v.forwarded = make(chan struct{})
	go func() {
		defer close(v.forwarded)
		for ev := range ch {
			e := control.Event{Time: time.Now(), Volume: v.cfg.Name, What: ev.What, Old: ev.Old, New: ev.New, Reason: ev.Reason}
			if ev.PeerSet {
				e.Peer = d.nodeName(ev.Peer)
			}
			d.bus.publish(e)
		}
	}()
	return rep, nil
}

// stopReplication stops the replicator once every event it reported is
// published.
func (d *Daemon) stopReplication(v *volume, rep *replication.Replicator) {
	rep.Close()
	rep.Unsubscribe(v.events)
	close(v.events)
	<-v.forwarded
}

// peersStatus fills a volume's role, disk and peers from its replicator.
func (d *Daemon) peersStatus(out *control.Volume, rep *replication.Replicator) {
	st := rep.Status()
	out.Role, out.Disk, out.Suspended, out.SuspendedFencing = st.Role.String(), st.Disk.String(), st.Suspended, st.FencingSuspended
	if st.Quorum != engine.QuorumOff {
		out.Quorum = map[bool]string{true: "yes", false: "lost"}[st.Quorate]
		out.Reachable, out.Nodes = st.Reachable, len(st.Peers)+1
	}
	for _, p := range st.Peers {
		cp := control.Peer{
			Node: d.nodeName(p.Node), NodeID: int32(p.Node), Connection: p.Conn.String(), Replication: p.Repl.String(),
			Role: p.Role.String(), Disk: p.Disk.String(), OutOfSyncBytes: p.OutOfSyncBytes, LastError: p.LastError, LastDisconnect: p.LastDisconnect,
			Fencing: p.Fencing, Outdated: p.Outdated, InItsSyncSet: p.InItsSyncSet,
		}
		if cp.LastError == "" {
			cp.LastError = st.LinkError[p.Node]
		}
		cp.SentBytes, cp.ReceivedBytes = st.Traffic[p.Node].Sent, st.Traffic[p.Node].Received
		if p.Repl == engine.VerifyS {
			cp.Verify = &control.Verify{TotalBytes: out.Size, DoneBytes: p.VerifyDone}
			if out.Size > 0 {
				cp.Verify.Percent = 100 * float64(p.VerifyDone) / float64(out.Size)
			}
		}
		if p.LastVerify.Checked > 0 {
			cp.LastVerify = &control.VerifyResult{CheckedBytes: p.LastVerify.Checked, Differences: p.LastVerify.Differences}
		}
		if p.Repl == engine.SyncSource || p.Repl == engine.SyncTarget {
			rs := &control.Resync{TotalBytes: p.ResyncTotal, DoneBytes: p.ResyncDone, BytesPerSec: st.ResyncRate[p.Node], ETASeconds: -1}
			if p.ResyncTotal > 0 {
				rs.Percent = 100 * float64(p.ResyncDone) / float64(p.ResyncTotal)
			}
			if rs.BytesPerSec > 0 {
				rs.ETASeconds = float64(p.ResyncTotal-p.ResyncDone) / rs.BytesPerSec
			}
			cp.Resync = rs
		}
		out.Peers = append(out.Peers, cp)
	}
}

// replicator returns an up, replicated volume's replicator.
func (d *Daemon) replicator(name string) (*volume, *replication.Replicator, error) {
	v, err := d.volume(name)
	if err != nil {
		return nil, nil, err
	}
	v.mu.Lock()
	rep, up := v.mu.rep, v.mu.vol != nil
	v.mu.Unlock()
	switch {
	case !v.cfg.Replicated():
		return v, nil, control.Errorf(http.StatusConflict, "configure replication.peers for it", "volume %s is standalone (no peers): it is always primary", name)
	case !up:
		return v, nil, control.Errorf(http.StatusConflict, fmt.Sprintf("run `repctl up %s` first", name), "volume %s is not up", name)
	}
	return v, rep, nil
}

// Promote makes this node primary for a volume.
func (d *Daemon) Promote(name string, force bool) (control.Volume, error) {
	v, rep, err := d.replicator(name)
	if err != nil {
		return control.Volume{}, err
	}
	if err := rep.Promote(force); err != nil {
		hint := ""
		switch {
		case errors.Is(err, engine.ErrNotUpToDate):
			hint = "use `repctl primary --force " + name + "` only if this node's data is the copy to keep"
		case errors.Is(err, engine.ErrPeerPrimary):
			hint = "demote the other node first (`repctl secondary " + name + "` there)"
		case errors.Is(err, engine.ErrNeedsFencing):
			hint = "fence the other node (`repctl fence node NODE`), or if you verified it is down: `repctl fence confirm NODE`, then retry; `repctl primary --force` skips fencing at your own risk"
		}
		return control.Volume{}, control.WithStatus(http.StatusConflict, hint, err)
	}
	return d.volumeStatus(v), nil
}

// Demote makes this node secondary for a volume; NBD clients must be gone.
func (d *Daemon) Demote(name string) (control.Volume, error) {
	v, rep, err := d.replicator(name)
	if err != nil {
		return control.Volume{}, err
	}
	if n := d.nbd.Connections()[name]; n > 0 && rep.Role() == engine.Primary {
		return control.Volume{}, control.Errorf(http.StatusConflict,
			"disconnect them (nbd-client -d, umount) or run `repctl down "+name+"`",
			"volume %s has %d NBD connection(s) open; a primary in use cannot be demoted", name, n)
	}
	if err := rep.Demote(); err != nil {
		return control.Volume{}, err
	}
	return d.volumeStatus(v), nil
}

// Connect lets peers (or one) connect again, optionally discarding this
// node's data to resolve a split brain.
func (d *Daemon) Connect(name, peer string, discardMyData, connect bool) (control.Volume, error) {
	v, rep, err := d.replicator(name)
	if err != nil {
		return control.Volume{}, err
	}
	var ids []uint32
	if peer == "" {
		for _, p := range v.cfg.Replication.Peers {
			id, _ := d.nodeID(p)
			ids = append(ids, id)
		}
	} else {
		id, ok := d.nodeID(peer)
		if !ok || !contains(v.cfg.Replication.Peers, peer) {
			return control.Volume{}, control.Errorf(http.StatusNotFound, "peers: "+strings.Join(v.cfg.Replication.Peers, ", "),
				"%q is not a peer of volume %s", peer, name)
		}
		ids = []uint32{id}
	}
	for _, id := range ids {
		if connect {
			err = rep.Connect(id, discardMyData)
		} else {
			err = rep.Disconnect(id)
		}
		if err != nil {
			return control.Volume{}, err
		}
	}
	return d.volumeStatus(v), nil
}

// Verify starts an online verify of a volume with a peer.
func (d *Daemon) Verify(name, peer string) (control.Volume, error) {
	v, rep, err := d.replicator(name)
	if err != nil {
		return control.Volume{}, err
	}
	if peer == "" {
		if len(v.cfg.Replication.Peers) != 1 {
			return control.Volume{}, control.Errorf(http.StatusBadRequest, "name one of: "+strings.Join(v.cfg.Replication.Peers, ", "),
				"volume %s has %d peers; say which to verify against", name, len(v.cfg.Replication.Peers))
		}
		peer = v.cfg.Replication.Peers[0]
	}
	id, ok := d.nodeID(peer)
	if !ok || !contains(v.cfg.Replication.Peers, peer) {
		return control.Volume{}, control.Errorf(http.StatusNotFound, "", "%q is not a peer of volume %s", peer, name)
	}
	if err := rep.StartVerify(id); err != nil {
		return control.Volume{}, control.WithStatus(http.StatusConflict, "wait until the peer is connected and in sync (repctl wait-sync "+name+")", err)
	}
	return d.volumeStatus(v), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (d *Daemon) replicationRoutes() {
	h := func(f func(r *http.Request) (any, error)) http.Handler { return control.Handle(d.log, f) }
	d.mux.Handle("POST /v1/volumes/{name}/primary", h(func(r *http.Request) (any, error) {
		var req control.PrimaryRequest
		if err := control.DecodeBody(r, &req); err != nil {
			return nil, err
		}
		return d.Promote(r.PathValue("name"), req.Force)
	}))
	d.mux.Handle("POST /v1/volumes/{name}/secondary", h(func(r *http.Request) (any, error) {
		return d.Demote(r.PathValue("name"))
	}))
	for _, verb := range []string{"connect", "disconnect"} {
		connect := verb == "connect"
		d.mux.Handle("POST /v1/volumes/{name}/"+verb, h(func(r *http.Request) (any, error) {
			var req control.ConnectRequest
			if err := control.DecodeBody(r, &req); err != nil {
				return nil, err
			}
			return d.Connect(r.PathValue("name"), req.Peer, req.DiscardMyData, connect)
		}))
	}
	d.mux.Handle("POST /v1/volumes/{name}/verify", h(func(r *http.Request) (any, error) {
		var req control.VerifyRequest
		if err := control.DecodeBody(r, &req); err != nil {
			return nil, err
		}
		return d.Verify(r.PathValue("name"), req.Peer)
	}))
	d.mux.Handle("POST /v1/volumes/{name}/resume-io", h(func(r *http.Request) (any, error) {
		v, rep, err := d.replicator(r.PathValue("name"))
		if err != nil {
			return nil, err
		}
		rep.ResumeIO()
		return d.volumeStatus(v), nil
	}))
	d.mux.HandleFunc("GET /v1/events", d.serveEvents)
}

// serveEvents streams state changes as JSON lines until the client goes.
func (d *Daemon) serveEvents(w http.ResponseWriter, r *http.Request) {
	volume := r.URL.Query().Get("volume")
	ch := d.bus.subscribe()
	defer d.bus.unsubscribe(ch)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		select {
		case ev := <-ch:
			if volume != "" && ev.Volume != volume {
				continue
			}
			if err := enc.Encode(ev); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		case <-r.Context().Done():
			return
		case <-d.bus.closed:
			return
		}
	}
}

// eventBus fans events out to `repctl events` streams.
type eventBus struct {
	mu     sync.Mutex
	subs   map[chan control.Event]struct{}
	closed chan struct{}
	once   sync.Once
}

func newEventBus() *eventBus {
	return &eventBus{subs: make(map[chan control.Event]struct{}), closed: make(chan struct{})}
}

func (b *eventBus) publish(e control.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

func (b *eventBus) subscribe() chan control.Event {
	ch := make(chan control.Event, 256)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch
}

func (b *eventBus) unsubscribe(ch chan control.Event) {
	b.mu.Lock()
	delete(b.subs, ch)
	b.mu.Unlock()
}

func (b *eventBus) close() { b.once.Do(func() { close(b.closed) }) }

// listenReplication opens the replication listener.
func (d *Daemon) listenReplication(ctx context.Context) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", d.replicationListen())
}
