package lvs

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inNetNS runs fn on a fresh OS thread that has joined the network namespace
// at path, and returns fn's error. Sockets fn creates stay in that namespace
// and may be used from any goroutine afterwards; a process fn starts
// inherits it. With path "" fn runs directly.
//
// The thread is never switched back: the goroutine exits while still locked,
// so the runtime discards the thread instead of reusing it in the wrong
// namespace.
func inNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread, on purpose (see above).
		h, err := netns.GetFromPath(path)
		if err != nil {
			errc <- fmt.Errorf("open network namespace %s: %w", path, err)
			return
		}
		defer h.Close()
		if err := unix.Setns(int(h), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// nsHandle opens a namespace for libraries that take a handle (netlink,
// nftables). The caller closes it. With path "" it returns -1 (current
// namespace) and a no-op closer.
func nsHandle(path string) (netns.NsHandle, func(), error) {
	if path == "" {
		return netns.None(), func() {}, nil
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	return h, func() { h.Close() }, nil
}
