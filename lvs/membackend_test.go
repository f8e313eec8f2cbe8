package lvs_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/replicad/replicad/lvs"
	"github.com/replicad/replicad/lvs/lvstest"
	"github.com/replicad/replicad/lvs/model"
)

var _ lvs.Backend = (*lvstest.MemBackend)(nil)

// The in-memory backend behaves like a kernel table for the manager:
// foreign services stay, a restarted manager finds nothing to change, and
// counters show in Status.
func TestMemBackendKeepsForeignServicesAndRestartsQuietly(t *testing.T) {
	b := lvstest.NewMemBackend(model.BackendNFTables)
	foreign, err := model.ParseKey("tcp/10.9.9.9:22")
	if err != nil {
		t.Fatal(err)
	}
	b.AddForeign(model.Service{Key: foreign, Scheduler: "rr"})
	cfg := lvs.DefaultConfig()
	cfg.Services = []lvs.ServiceConfig{{Name: "web", Address: "10.0.0.1:80", RealServers: []lvs.RealServerConfig{{Address: "10.0.1.1"}, {Address: "10.0.1.2"}}}}
	start := func() *lvs.Manager {
		m, err := lvs.New(cfg, lvs.Options{Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := start()
	if got := b.Applied(); len(got) != 3 {
		t.Fatalf("first start applied %q; want a service and two real servers", got)
	}
	key, _ := model.ParseKey("tcp/10.0.0.1:80")
	rs := netip.MustParseAddrPort("10.0.1.2:80")
	b.SetStats(key, model.Stats{Connections: 7}, map[netip.AddrPort]model.Stats{rs: {Connections: 4}})
	st, err := m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Services[0].Stats.Connections != 7 || st.Services[0].RealServers[1].Stats.Connections != 4 || len(st.Unmanaged) != 1 {
		t.Fatalf("status %+v", st)
	}
	m.Close()
	if !b.Closed() {
		t.Fatal("Close did not close the backend")
	}
	m = start()
	defer m.Close()
	if got := b.Applied(); len(got) != 0 {
		t.Fatalf("restart applied %q; want nothing", got)
	}
	if _, ok := b.Service(foreign); !ok {
		t.Fatal("the foreign service is gone")
	}
}
