package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The multi-node demo's configurations: one per node under DIR/<node>/,
// each valid, the nodes peering with each other over distinct loopback
// ports, sharing one secret file; a second demo in the same DIR reuses them.
func TestDemoConfigsReplicateBetweenNodes(t *testing.T) {
	dir := t.TempDir()
	nodes, err := writeDemoConfigs(dir, 3, "A", 64<<20, 0, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, n := range nodes {
		if n.config != filepath.Join(dir, n.name, "replicad.yaml") {
			t.Errorf("node %d's config is %s, want DIR/%s/replicad.yaml", i, n.config, n.name)
		}
		cfg, err := loadConfig(n.config, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", n.config, err)
		}
		if cfg.Node.Name != n.name || cfg.Node.ID != uint32(i) || cfg.Control.Socket != n.socket {
			t.Errorf("%s: node %+v, socket %s", n.config, cfg.Node, cfg.Control.Socket)
		}
		if len(cfg.Volumes) != 1 || cfg.Volumes[0].Name != demoVolume {
			t.Fatalf("%s: volumes %+v", n.config, cfg.Volumes)
		}
		r := cfg.Volumes[0].Replication
		if len(r.Peers) != 2 || r.Protocol != "A" || strings.Contains(strings.Join(r.Peers, ","), n.name) {
			t.Errorf("%s: replication %+v; want the two other nodes, protocol A", n.config, r)
		}
		if cfg.Cluster.SecretFile != filepath.Join(dir, "cluster.secret") || len(cfg.Cluster.Nodes) != 3 {
			t.Errorf("%s: cluster %+v", n.config, cfg.Cluster)
		}
		for _, m := range cfg.Cluster.Nodes {
			if i == 0 {
				if seen[m.Address] {
					t.Errorf("replication address %s used twice", m.Address)
				}
				seen[m.Address] = true
			}
		}
		if seen[n.uri()] {
			t.Errorf("NBD URI %s used twice", n.uri())
		}
		seen[n.uri()] = true
	}
	if fi, err := os.Stat(filepath.Join(dir, "cluster.secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, mode %v", err, fi)
	}

	again, err := writeDemoConfigs(dir, 3, "C", 64<<20, 0, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for i := range nodes {
		if again[i].nbdPort != nodes[i].nbdPort {
			t.Errorf("%s: NBD port %d on reuse, was %d", nodes[i].name, again[i].nbdPort, nodes[i].nbdPort)
		}
	}
	if !strings.Contains(readFile(t, nodes[0].config), "protocol: A") {
		t.Errorf("reusing DIR rewrote %s", nodes[0].config)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A node that dies during start shows the end of its log in the error.
func TestLogTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replicad.log")
	if err := os.WriteFile(path, []byte("one\ntwo\nthree\nlisten tcp 127.0.0.1:7000: bind: address already in use\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := logTail(path, 2), "  three\n  listen tcp 127.0.0.1:7000: bind: address already in use"; got != want {
		t.Errorf("logTail = %q, want %q", got, want)
	}
	if got := logTail(filepath.Join(t.TempDir(), "none"), 2); !strings.Contains(got, "no such file") {
		t.Errorf("logTail of a missing file = %q", got)
	}
}
