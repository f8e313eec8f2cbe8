package daemon

import (
	"context"
	"net"
	"net/http"
	"os/user"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// peerKey carries a control connection's peer credentials in its
// requests' contexts.
type peerKey struct{}

// peerCred is who is on the other end of a control connection, from
// SO_PEERCRED: the kernel's word, not the client's.
type peerCred struct {
	UID, PID int
	Known    bool
}

// withPeerCred is the control server's ConnContext: it reads the unix
// socket peer's credentials once per connection.
func withPeerCred(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, peerCred{UID: int(cred.Uid), PID: int(cred.Pid), Known: true})
}

// requester names who sent a control request, for the fence history:
// "repctl root@node-a" (or "control-api …" for other clients).
func (d *Daemon) requester(r *http.Request) string {
	prog := "control-api"
	if strings.HasPrefix(r.UserAgent(), "repctl") {
		prog = "repctl"
	}
	who := "unknown"
	if pc, ok := r.Context().Value(peerKey{}).(peerCred); ok && pc.Known {
		who = "uid:" + strconv.Itoa(pc.UID)
		if u, err := user.LookupId(strconv.Itoa(pc.UID)); err == nil {
			who = u.Username
		}
	}
	return prog + " " + who + "@" + d.cfg.Node.Name
}
