package lvs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/replicad/replicad/lvs/wire"
)

// Checker probes one real server. Check returns nil when it is healthy and
// an error wrapping ErrUnhealthy otherwise; it gives up when ctx ends.
type Checker interface {
	Check(ctx context.Context) error
}

// dialFunc opens a TCP connection (inside the manager's namespace).
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// netnsDialer dials from the namespace at path ("" for the current one).
func netnsDialer(path string) dialFunc {
	var d net.Dialer
	if path == "" {
		return d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetNS(path, func() error {
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

func unhealthy(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUnhealthy, fmt.Sprintf(format, a...))
}

// newChecker builds the checker of a compiled check.
func newChecker(cs checkSpec, service, netnsPath string) Checker {
	dial := netnsDialer(netnsPath)
	addr := cs.target.String()
	switch cs.cfg.Type {
	case "tcp":
		return &tcpChecker{dial: dial, addr: addr}
	case "http", "https":
		return newHTTPChecker(cs, dial)
	case "mysql":
		return &mysqlChecker{dial: dial, addr: addr, user: cs.cfg.User, password: cs.cfg.Password}
	case "nfs":
		return &nfsChecker{dial: dial, addr: addr, version: uint32(cs.cfg.NFSVersion)}
	case "exec":
		return &execChecker{argv: cs.cfg.Command, target: cs.target, service: service, netnsPath: netnsPath}
	}
	panic("lvs: newChecker for check type " + cs.cfg.Type + " that validation let through")
}

// tcpChecker: the connection is accepted.
type tcpChecker struct {
	dial dialFunc
	addr string
}

func (c *tcpChecker) Check(ctx context.Context) error {
	conn, err := c.dial(ctx, "tcp", c.addr)
	if err != nil {
		return unhealthy("tcp connect %s: %v", c.addr, err)
	}
	return conn.Close()
}

// httpChecker: GET path; the status is one of the expected ones and the
// body (first 1 MiB) matches the pattern, if any.
type httpChecker struct {
	client *http.Client
	url    string
	host   string
	expect []int
	body   *regexp.Regexp
}

func newHTTPChecker(cs checkSpec, dial dialFunc) *httpChecker {
	c := cs.cfg
	tr := &http.Transport{
		DialContext:       dial,
		DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: !c.TLSVerify, // health checks talk to real servers by address
			ServerName:         c.ServerName,
		},
	}
	return &httpChecker{
		client: &http.Client{
			Transport: tr,
			// A redirect is an answer; report its status, do not follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		url:    c.Type + "://" + cs.target.String() + c.Path,
		host:   c.Host,
		expect: c.ExpectStatus,
		body:   cs.body,
	}
}

func (c *httpChecker) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return unhealthy("%v", err)
	}
	if c.host != "" {
		req.Host = c.host
	}
	req.Header.Set("User-Agent", "replicad-health-check")
	resp, err := c.client.Do(req)
	if err != nil {
		return unhealthy("GET %s: %v", c.url, err)
	}
	defer resp.Body.Close()
	okStatus := resp.StatusCode >= 200 && resp.StatusCode < 400
	if len(c.expect) > 0 {
		okStatus = slices.Contains(c.expect, resp.StatusCode)
	}
	if !okStatus {
		return unhealthy("GET %s: status %d", c.url, resp.StatusCode)
	}
	if c.body == nil {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return unhealthy("GET %s: reading body: %v", c.url, err)
	}
	if !c.body.Match(b) {
		return unhealthy("GET %s: body does not match %q", c.url, c.body)
	}
	return nil
}

func withDeadline(ctx context.Context, conn net.Conn) {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
}

// mysqlChecker: the server greets with protocol 10 and answers a login (see
// CheckConfig.User for what counts as an answer).
type mysqlChecker struct {
	dial           dialFunc
	addr           string
	user, password string
}

// Login errors that prove the server is up and authenticating.
var mysqlAccessDenied = []uint16{1044, 1045, 1698}

func (c *mysqlChecker) Check(ctx context.Context) error {
	conn, err := c.dial(ctx, "tcp", c.addr)
	if err != nil {
		return unhealthy("mysql connect %s: %v", c.addr, err)
	}
	defer conn.Close()
	withDeadline(ctx, conn)
	const limit = 1 << 16
	seq, p, err := wire.ReadMySQLPacket(conn, limit)
	if err != nil {
		return unhealthy("mysql %s: reading greeting: %v", c.addr, err)
	}
	g, err := wire.ParseGreeting(p)
	if err != nil {
		return unhealthy("mysql %s: greeting: %v", c.addr, err)
	}
	user := c.user
	if user == "" {
		user = DefaultMySQLUser
	}
	if _, err := conn.Write(wire.AppendMySQLPacket(nil, seq+1, wire.HandshakeResponse(g, user, c.password))); err != nil {
		return unhealthy("mysql %s: login: %v", c.addr, err)
	}
	for range 3 {
		seq, p, err = wire.ReadMySQLPacket(conn, limit)
		if err != nil {
			return unhealthy("mysql %s: login reply: %v", c.addr, err)
		}
		r, err := wire.ParseLoginReply(p)
		switch {
		case err != nil:
			return unhealthy("mysql %s: login reply: %v", c.addr, err)
		case r.OK:
			conn.Write(wire.AppendMySQLPacket(nil, 0, []byte{wire.ComQuit}))
			return nil
		case r.Err != nil && c.user == "" && slices.Contains(mysqlAccessDenied, r.Err.Code):
			return nil
		case r.Err != nil:
			return unhealthy("mysql %s: %v", c.addr, r.Err)
		case r.MoreData:
			return nil // the server is running its authentication exchange
		case r.SwitchTo != "":
			var answer []byte
			if r.SwitchTo == wire.NativePasswordPlugin {
				answer = wire.Scramble(r.SwitchData, c.password)
			}
			if _, err := conn.Write(wire.AppendMySQLPacket(nil, seq+1, answer)); err != nil {
				return unhealthy("mysql %s: auth switch: %v", c.addr, err)
			}
		}
	}
	return unhealthy("mysql %s: login did not finish", c.addr)
}

// nfsChecker: an ONC RPC NULL call to the NFS program succeeds.
type nfsChecker struct {
	dial    dialFunc
	addr    string
	version uint32
}

func (c *nfsChecker) Check(ctx context.Context) error {
	conn, err := c.dial(ctx, "tcp", c.addr)
	if err != nil {
		return unhealthy("nfs connect %s: %v", c.addr, err)
	}
	defer conn.Close()
	withDeadline(ctx, conn)
	var b [4]byte
	rand.Read(b[:])
	xid := binary.BigEndian.Uint32(b[:])
	if _, err := conn.Write(wire.NullCall(xid, wire.NFSProgram, c.version)); err != nil {
		return unhealthy("nfs %s: call: %v", c.addr, err)
	}
	rec, err := wire.ReadRecord(conn, 1<<16)
	if err != nil {
		return unhealthy("nfs %s: reply: %v", c.addr, err)
	}
	r, err := wire.ParseReply(rec)
	if err != nil {
		return unhealthy("nfs %s: reply: %v", c.addr, err)
	}
	if r.XID != xid {
		return unhealthy("nfs %s: reply to xid %#x, want %#x", c.addr, r.XID, xid)
	}
	if err := r.Err(); err != nil {
		return unhealthy("nfs %s: NULL v%d: %v", c.addr, c.version, err)
	}
	return nil
}

// execChecker: the command exits 0.
type execChecker struct {
	argv      []string
	target    netip.AddrPort
	service   string
	netnsPath string
}

func (c *execChecker) Check(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Env = append(os.Environ(),
		"REPLICAD_RS_ADDRESS="+c.target.Addr().String(),
		"REPLICAD_RS_PORT="+strconv.Itoa(int(c.target.Port())),
		"REPLICAD_SERVICE="+c.service,
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Own process group, so the timeout kills whatever the command started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	// The child inherits the namespace of the thread that forks it.
	if err := inNetNS(c.netnsPath, cmd.Start); err != nil {
		return unhealthy("exec %s: %v", c.argv[0], err)
	}
	err := cmd.Wait()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(out.String())
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if ctx.Err() != nil {
		return unhealthy("exec %s: killed at the timeout", c.argv[0])
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return unhealthy("exec %s: exit status %d: %s", c.argv[0], ee.ExitCode(), msg)
	}
	return unhealthy("exec %s: %v", c.argv[0], err)
}
