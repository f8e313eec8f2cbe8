package lvstest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NS is a named network namespace created with `ip netns add`.
type NS struct {
	Name string
	Path string // /var/run/netns/NAME
}

// AddNS creates a network namespace with its loopback up.
func AddNS(name string) (*NS, error) {
	if _, err := run("ip", "netns", "add", name); err != nil {
		return nil, err
	}
	ns := &NS{Name: name, Path: "/var/run/netns/" + name}
	if _, err := ns.IP("link", "set", "lo", "up"); err != nil {
		ns.Delete()
		return nil, err
	}
	return ns, nil
}

// Delete removes the namespace (its interfaces and sockets go with it once
// the last user is gone).
func (ns *NS) Delete() error {
	_, err := run("ip", "netns", "del", ns.Name)
	return err
}

// IP runs `ip -n NAME args...`.
func (ns *NS) IP(args ...string) (string, error) {
	return run("ip", append([]string{"-n", ns.Name}, args...)...)
}

// Exec runs a command inside the namespace (`ip netns exec`).
func (ns *NS) Exec(args ...string) (string, error) {
	return run("ip", append([]string{"netns", "exec", ns.Name}, args...)...)
}

// Sysctl sets a sysctl inside the namespace.
func (ns *NS) Sysctl(key, value string) error {
	_, err := ns.Exec("sysctl", "-q", "-w", key+"="+value)
	return err
}

// Do runs fn on a fresh OS thread inside the namespace; sockets it opens
// stay there. The thread is discarded afterwards.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		h, err := netns.GetFromPath(ns.Path)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := unix.Setns(int(h), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Worker is one OS thread living in a namespace, for callers that open
// many sockets there (a load generator): cheaper than Do per socket.
type Worker struct {
	reqs chan func()
	done chan struct{}
}

// NewWorker starts a worker thread in ns.
func (ns *NS) NewWorker() (*Worker, error) {
	w := &Worker{reqs: make(chan func()), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		defer close(w.done)
		runtime.LockOSThread()
		h, err := netns.GetFromPath(ns.Path)
		if err == nil {
			err = unix.Setns(int(h), unix.CLONE_NEWNET)
			h.Close()
		}
		ready <- err
		if err != nil {
			return
		}
		for f := range w.reqs {
			f()
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return w, nil
}

// Do runs fn on the worker's thread and waits for it.
func (w *Worker) Do(fn func()) {
	done := make(chan struct{})
	w.reqs <- func() { fn(); close(done) }
	<-done
}

// Close stops the worker and waits for it.
func (w *Worker) Close() {
	close(w.reqs)
	<-w.done
}

func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Available reports why namespaces cannot be used here ("" when they can).
func Available() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "ip (iproute2) not installed"
	}
	return ""
}

// WaitLinkUp waits until ifname reports operational state UP. A fresh veth
// drops every packet until the kernel's link watcher has activated it (up
// to a second after `ip link set up`), which would eat the first
// gratuitous ARPs of a test.
func (ns *NS) WaitLinkUp(ifname string) error {
	for range 100 {
		out, err := ns.IP("-o", "link", "show", ifname)
		if err != nil {
			return err
		}
		if strings.Contains(out, "state UP") {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: %s did not come up", ns.Name, ifname)
}
