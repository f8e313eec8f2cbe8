package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/replicad/replicad/internal/control"
	"github.com/replicad/replicad/nbd"
	"github.com/replicad/replicad/replication"
	"github.com/replicad/replicad/replication/disk"
	"github.com/replicad/replicad/replication/engine"
	"github.com/replicad/replicad/replication/meta"
)

// volume is a configured volume and, when up, its attached Volume.
type volume struct {
	cfg VolumeConfig
	// op serialises create-md, up and down on this volume (they do I/O).
	op sync.Mutex
	// events carries the replicator's state changes to the event bus;
	// forwarded is closed when the last is published.
	events    chan engine.Event
	forwarded chan struct{}
	mu        struct {
		sync.Mutex
		state string
		err   string
		hint  string
		// attaching: up is reading the metadata and replaying the
		// activity log (disk Attaching).
		attaching bool
		vol       *replication.Volume
		rep       *replication.Replicator // nil for a standalone volume
		metrics   *volumeMetrics
	}
}

func (v *volume) setState(state, err, hint string) {
	v.mu.Lock()
	v.mu.state, v.mu.err, v.mu.hint = state, err, hint
	v.mu.Unlock()
}

func (d *Daemon) volume(name string) (*volume, error) {
	v, ok := d.volumes[name]
	if !ok {
		return nil, control.Errorf(http.StatusNotFound, "run `repctl status` to list the configured volumes",
			"no volume named %q in the configuration", name)
	}
	return v, nil
}

// errNotCreated: the backing file does not exist but create-md will create it.
var errNotCreated = errors.New("backing file not created yet")

// openDevices opens a volume's backing and metadata devices. With create, a
// missing backing file is created when the config gives a size, and a
// missing external metadata file is created with metaSize bytes.
func openDevices(cfg VolumeConfig, create bool, metaSize func(dataSize int64) (int64, error)) (replication.Devices, error) {
	var devs replication.Devices
	opts := disk.OpenOptions{ReadOnly: cfg.ReadOnly && !create}
	if create {
		opts.CreateSize = cfg.Size
	}
	data, err := disk.Open(cfg.Device, opts)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if cfg.Size > 0 {
				return devs, fmt.Errorf("%w: create-md creates %s as a sparse %s file", errNotCreated, cfg.Device, sizeString(cfg.Size))
			}
			return devs, fmt.Errorf("backing device %s does not exist (create it, or set size in the volume's config to have create-md create a sparse file)", cfg.Device)
		}
		return devs, fmt.Errorf("open backing device: %w", err)
	}
	devs.Data = data
	if cfg.Meta == MetaInternal {
		return devs, nil
	}
	mopts := disk.OpenOptions{ReadOnly: opts.ReadOnly}
	if create && metaSize != nil {
		n, err := metaSize(data.Size())
		if err != nil {
			data.Close()
			return devs, err
		}
		mopts.CreateSize = n
	}
	md, err := disk.Open(cfg.Meta, mopts)
	if err != nil {
		data.Close()
		if errors.Is(err, os.ErrNotExist) {
			return devs, fmt.Errorf("metadata file %s does not exist: run `repctl create-md %s`", cfg.Meta, cfg.Name)
		}
		return devs, fmt.Errorf("open metadata device: %w", err)
	}
	devs.Meta = md
	return devs, nil
}

func closeDevices(devs replication.Devices) {
	if devs.Meta != nil {
		devs.Meta.Close()
	}
	if devs.Data != nil {
		devs.Data.Close()
	}
}

// CreateMD initialises a volume's metadata. The volume must be down.
func (d *Daemon) CreateMD(name string, force bool) (control.CreateMDResponse, error) {
	var resp control.CreateMDResponse
	v, err := d.volume(name)
	if err != nil {
		return resp, err
	}
	v.op.Lock()
	defer v.op.Unlock()
	v.mu.Lock()
	up := v.mu.vol != nil
	v.mu.Unlock()
	if up {
		return resp, control.Errorf(http.StatusConflict, fmt.Sprintf("run `repctl down %s` first", name),
			"volume %s is up; metadata can only be created on a volume that is down", name)
	}
	devs, err := openDevices(v.cfg, true, func(dataSize int64) (int64, error) {
		l, err := meta.ExternalLayout(dataSize, v.cfg.Geometry)
		return l.MetaSize, err
	})
	if err != nil {
		return resp, control.WithStatus(http.StatusBadRequest, "", err)
	}
	defer closeDevices(devs)
	layout, err := replication.CreateMetadata(devs, replication.CreateOptions{
		NodeID:   d.cfg.Node.ID,
		Geometry: v.cfg.Geometry,
		Force:    force,
		// Without peers there is nobody to sync from: the data is valid
		// as it is. Replicated volumes start Inconsistent until a first
		// (forced) promotion or a sync, as with DRBD.
		Standalone: !v.cfg.Replicated(),
	})
	if err != nil {
		var se *meta.SizeError
		switch {
		case errors.Is(err, replication.ErrMetadataExists):
			return resp, control.WithStatus(http.StatusConflict, "", err)
		case errors.As(err, &se) || errors.Is(err, meta.ErrGeometry):
			return resp, control.WithStatus(http.StatusBadRequest, "", err)
		}
		return resp, err
	}
	d.log.Info("metadata created", "volume", name, "data_size", layout.DataSize, "internal", layout.Internal, "force", force)
	v.setState(control.StateDown, "", fmt.Sprintf("run `repctl up %s` to serve it", name))
	return control.CreateMDResponse{
		Volume: name, DataSize: layout.DataSize, MetaSize: layout.MetaSize, Internal: layout.Internal,
		Disk: map[bool]string{true: "Inconsistent", false: "UpToDate"}[v.cfg.Replicated()], MaxPeers: layout.Geometry.MaxPeers,
		ALExtents: layout.Geometry.ALExtents, BitmapGranul: layout.Geometry.BitmapGranularity,
	}, nil
}

// Up attaches a volume and serves it.
func (d *Daemon) Up(name string) (control.Volume, error) {
	v, err := d.volume(name)
	if err != nil {
		return control.Volume{}, err
	}
	v.op.Lock()
	defer v.op.Unlock()
	if err := d.upLocked(v); err != nil {
		return control.Volume{}, err
	}
	return d.volumeStatus(v), nil
}

// upLocked attaches v; v.op is held.
func (d *Daemon) upLocked(v *volume) error {
	v.mu.Lock()
	up := v.mu.vol != nil
	v.mu.Unlock()
	if up {
		return nil
	}
	name := v.cfg.Name
	d.diskEvent(v, string(replication.Diskless), string(replication.Attaching), "")
	v.mu.Lock()
	v.mu.attaching = true
	v.mu.Unlock()
	attached := false
	defer func() {
		v.mu.Lock()
		v.mu.attaching = false
		v.mu.Unlock()
		if !attached {
			d.diskEvent(v, string(replication.Attaching), string(replication.Diskless), "attach failed")
		}
	}()
	devs, err := openDevices(v.cfg, false, nil)
	if errors.Is(err, errNotCreated) {
		hint := fmt.Sprintf("initialise it with `repctl create-md %s`", name)
		v.setState(control.StateUnconfigured, err.Error(), hint)
		return control.WithStatus(http.StatusConflict, hint, err)
	}
	if err != nil {
		v.setState(control.StateError, err.Error(), "")
		return control.WithStatus(http.StatusConflict, "", err)
	}
	vol, report, err := replication.Attach(name, devs, replication.AttachOptions{ReadOnly: v.cfg.ReadOnly, Logger: d.log})
	if err != nil {
		closeDevices(devs)
		if errors.Is(err, replication.ErrNoMetadata) {
			hint := fmt.Sprintf("initialise it with `repctl create-md %s`", name)
			v.setState(control.StateUnconfigured, "no metadata on "+metaWhere(v.cfg), hint)
			return control.Errorf(http.StatusConflict, hint, "volume %s has no metadata", name)
		}
		v.setState(control.StateError, err.Error(), "")
		return control.WithStatus(http.StatusConflict, "", fmt.Errorf("attach %s: %w", name, err))
	}
	if report.CrashedPrimary {
		d.log.Warn("volume was primary and did not shut down cleanly", "volume", name, "al_extents", report.ALReplayed)
	}
	var rep *replication.Replicator
	switch {
	case v.cfg.Replicated():
		// Replicated volumes come up secondary; repctl primary (or the
		// cluster manager) promotes.
		if rep, err = d.newReplication(v, vol); err != nil {
			vol.Close()
			v.setState(control.StateError, err.Error(), "")
			return fmt.Errorf("attach %s: %w", name, err)
		}
	case !v.cfg.ReadOnly:
		// A standalone volume is its own primary.
		if err := vol.SetPrimary(true); err != nil {
			vol.Close()
			v.setState(control.StateError, err.Error(), "")
			return fmt.Errorf("attach %s: %w", name, err)
		}
	}
	v.mu.Lock()
	v.mu.vol, v.mu.rep = vol, rep
	v.mu.metrics = d.metrics.forVolume(name)
	v.mu.state, v.mu.err, v.mu.hint = control.StateUp, "", ""
	v.mu.Unlock()
	attached = true
	// Published before the replicator starts, so that its changes follow.
	disk := d.volumeStatus(v).Disk
	d.diskEvent(v, string(replication.Attaching), disk, "")
	if rep != nil {
		rep.Start()
	}
	d.log.Info("volume up", "volume", name, "size", vol.Size(), "disk", disk)
	return nil
}

// diskEvent publishes a change of a volume's disk state that the daemon
// makes (attach and detach; the replicator reports the others).
func (d *Daemon) diskEvent(v *volume, old, now, reason string) {
	d.bus.publish(control.Event{Time: time.Now(), Volume: v.cfg.Name, What: "disk", Old: old, New: now, Reason: reason})
}

func metaWhere(cfg VolumeConfig) string {
	if cfg.Meta == MetaInternal {
		return cfg.Device + " (internal)"
	}
	return cfg.Meta
}

// Down stops serving a volume, closes its NBD connections and detaches it
// cleanly.
func (d *Daemon) Down(name string) (control.Volume, error) {
	v, err := d.volume(name)
	if err != nil {
		return control.Volume{}, err
	}
	v.op.Lock()
	defer v.op.Unlock()
	if err := d.downLocked(v); err != nil {
		return control.Volume{}, err
	}
	return d.volumeStatus(v), nil
}

func (d *Daemon) downLocked(v *volume) error {
	v.mu.Lock()
	vol, rep := v.mu.vol, v.mu.rep
	v.mu.vol, v.mu.rep = nil, nil // no new connection can find it
	v.mu.Unlock()
	if vol == nil {
		return nil
	}
	if d.nbd != nil {
		d.nbd.CloseExport(v.cfg.Name)
	}
	var disk string
	if rep != nil {
		// (its last events published first, then the state it ended in)
		d.stopReplication(v, rep)
		disk = rep.Status().Disk.String()
	} else {
		disk = string(vol.Status().Disk)
	}
	err := vol.Close()
	if err != nil {
		v.setState(control.StateError, "detach: "+err.Error(), "the activity log will be replayed at the next up")
		d.log.Error("volume detach failed", "volume", v.cfg.Name, "err", err)
		return fmt.Errorf("detach %s: %w", v.cfg.Name, err)
	}
	v.setState(control.StateDown, "", "")
	d.diskEvent(v, disk, string(replication.Diskless), "detached")
	d.log.Info("volume down", "volume", v.cfg.Name)
	return nil
}

// exports resolves NBD export names to up volumes.
type exports struct{ d *Daemon }

var _ nbd.Exports = exports{}

func (e exports) Export(name string) (nbd.Export, bool) {
	if name == "" {
		// Clients send the empty name when the user gave none: serve the
		// only volume that is up, if there is exactly one.
		names := e.ExportNames()
		if len(names) != 1 {
			return nbd.Export{}, false
		}
		name = names[0]
	}
	v, ok := e.d.volumes[name]
	if !ok {
		return nbd.Export{}, false
	}
	v.mu.Lock()
	vol, rep, m := v.mu.vol, v.mu.rep, v.mu.metrics
	v.mu.Unlock()
	if vol == nil {
		return nbd.Export{}, false
	}
	if rep != nil {
		// A secondary's export is read-only; promotion takes effect for
		// connections made after it.
		return nbd.Export{Name: name, Description: v.cfg.Description, Backend: replicatedBackend{backend{io: rep, m: m}, rep},
			ReadOnly: vol.ReadOnly() || rep.Role() != engine.Primary}, true
	}
	return nbd.Export{Name: name, Description: v.cfg.Description, Backend: backend{io: vol, m: m}, ReadOnly: vol.ReadOnly()}, true
}

func (e exports) ExportNames() []string {
	var out []string
	for name, v := range e.d.volumes {
		v.mu.Lock()
		if v.mu.vol != nil {
			out = append(out, name)
		}
		v.mu.Unlock()
	}
	sort.Strings(out)
	return out
}
