package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/replicad/replicad/internal/freeport"
)

// freePorts returns n distinct free TCP ports on 127.0.0.1, below the
// ephemeral range that the suite's parallel clients draw from.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports, err := freeport.Loopback(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// clusterSpec describes replicated nodes on loopback.
type clusterSpec struct {
	Nodes    int
	Volume   string
	Size     string
	Protocol string
	// Extra is appended to the volume's replication section.
	Extra string
	// DLM, if set, enables the DLM with these further keys of the dlm
	// section (lines indented by two spaces); node ids then start at 1 and
	// every node gets a dlm-address. With no Volume there is no volume.
	DLM string
	// Addrs, if set, are the nodes' replication addresses (host:port);
	// default: free ports on 127.0.0.1.
	Addrs []string
	// UnixNBD serves NBD on a unix socket in the node's directory instead
	// of TCP on 127.0.0.1 (for nodes in network namespaces).
	UnixNBD bool
}

// newCluster writes one config per node and returns the (not started) nodes.
func newCluster(t *testing.T, s clusterSpec) []*node {
	t.Helper()
	ports := freePorts(t, 2*s.Nodes)
	firstID := 0
	if s.DLM != "" {
		firstID = 1 // the DLM does not use node id 0
	}
	var nodes []*node
	var nodeList strings.Builder
	addrs := s.Addrs
	if addrs == nil {
		for _, p := range ports[:s.Nodes] {
			addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
		}
	}
	for i := 0; i < s.Nodes; i++ {
		fmt.Fprintf(&nodeList, "    - {name: n%d, id: %d, address: \"%s\"", i, firstID+i, addrs[i])
		if s.DLM != "" {
			fmt.Fprintf(&nodeList, ", dlm-address: \"127.0.0.1:%d\"", ports[s.Nodes+i])
		}
		nodeList.WriteString("}\n")
	}
	for i := 0; i < s.Nodes; i++ {
		dir := t.TempDir()
		n := &node{t: t, dir: dir, config: filepath.Join(dir, "replicad.yaml"), socket: filepath.Join(dir, "control.sock")}
		var peers []string
		for j := 0; j < s.Nodes; j++ {
			if j != i {
				peers = append(peers, fmt.Sprintf("n%d", j))
			}
		}
		listen := "tcp://127.0.0.1:0"
		if s.UnixNBD {
			listen = "unix://" + filepath.Join(dir, "nbd.sock")
		}
		cfg := fmt.Sprintf(`node: {name: n%d, id: %d}
control: {socket: %s}
metrics: {listen: "127.0.0.1:0"}
log: {level: debug}
nbd:
  listen: ["%s"]
cluster:
  secret: "integration-test-secret-0123456789"
  nodes:
%s`, i, firstID+i, n.socket, listen, nodeList.String())
		if s.DLM != "" {
			cfg += fmt.Sprintf("dlm:\n  enabled: true\n  socket: %s\n%s", n.dlmSocket(), s.DLM)
		}
		if s.Volume != "" {
			cfg += fmt.Sprintf(`volumes:
  - name: %s
    device: %s/%s.img
    size: %s
    al-extents: 257
    replication:
      peers: [%s]
      protocol: %s
      ping-interval: 500ms
      ping-timeout: 1s
      connect-interval: 200ms
%s`, s.Volume, dir, s.Volume, s.Size, strings.Join(peers, ", "), s.Protocol, s.Extra)
		}
		if err := os.WriteFile(n.config, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// waitSync waits for a volume to be in sync with every peer (repctl wait-sync).
func (n *node) waitSync(volume string) {
	n.t.Helper()
	n.mustRepctl("wait-sync", "--quiet", volume)
}

// dlmSocket is the node's DLM client socket (clusters with DLM set).
func (n *node) dlmSocket() string { return filepath.Join(n.dir, "dlm.sock") }
