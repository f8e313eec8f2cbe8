package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// testNet simulates hosts on one machine: a network namespace per node
// (rpdfw-PID-NODE) with eth0 at 10.99.0.N/24 and lo up, all joined by a
// bridge in a management namespace (rpdfw-PID-mgmt), which can also hold
// addresses for things that are not nodes, such as their BMCs. Everything
// is deleted when the test ends (after the test's own processes stop,
// since cleanups run last-registered first).
type testNet struct {
	t      *testing.T
	ip     string
	prefix string
	Mgmt   string
	ns     map[string]string
	addr   map[string]string
}

func newTestNet(t *testing.T, ipPath string, nodes ...string) *testNet {
	t.Helper()
	n := &testNet{t: t, ip: ipPath, prefix: fmt.Sprintf("rpdfw-%d", os.Getpid()), ns: map[string]string{}, addr: map[string]string{}}
	n.Mgmt = n.prefix + "-mgmt"
	n.addNS(n.Mgmt)
	n.run("-n", n.Mgmt, "link", "add", "br0", "type", "bridge")
	n.run("-n", n.Mgmt, "link", "set", "br0", "up")
	n.run("-n", n.Mgmt, "link", "set", "lo", "up")
	for i, node := range nodes {
		ns := fmt.Sprintf("%s-%d", n.prefix, i)
		n.addNS(ns)
		port := fmt.Sprintf("p%d", i)
		n.run("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", n.Mgmt)
		n.run("-n", n.Mgmt, "link", "set", port, "master", "br0")
		n.run("-n", n.Mgmt, "link", "set", port, "up")
		addr := fmt.Sprintf("10.99.0.%d", i+1)
		n.run("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		n.run("-n", ns, "link", "set", "eth0", "up")
		n.run("-n", ns, "link", "set", "lo", "up")
		n.ns[node], n.addr[node] = ns, addr
	}
	return n
}

// addNS creates a namespace and deletes it at the end of the test.
func (n *testNet) addNS(ns string) {
	n.t.Helper()
	n.run("netns", "add", ns)
	n.t.Cleanup(func() {
		if out, err := exec.Command(n.ip, "netns", "del", ns).CombinedOutput(); err != nil {
			n.t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
}

func (n *testNet) run(args ...string) {
	n.t.Helper()
	if out, err := exec.Command(n.ip, args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// AddMgmtAddr gives the management namespace one more address (/24 on the
// nodes' network), e.g. for a BMC to listen on.
func (n *testNet) AddMgmtAddr(addr string) {
	n.run("-n", n.Mgmt, "addr", "add", addr+"/24", "dev", "br0")
}

// NS is node's namespace; Addr its eth0 address.
func (n *testNet) NS(node string) string   { return n.ns[node] }
func (n *testNet) Addr(node string) string { return n.addr[node] }

// Exec is the command prefix that runs a program in ns.
func (n *testNet) Exec(ns string) []string { return []string{n.ip, "netns", "exec", ns} }
