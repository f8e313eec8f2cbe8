package lvs

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicad/replicad/internal/testenv"
	"github.com/replicad/replicad/lvs/wire"
)

func spec(t *testing.T, target string, cc CheckConfig) checkSpec {
	t.Helper()
	var problems []string
	cs, ok := compileCheck(cc, "check", netip.MustParseAddrPort(target), func(f, format string, a ...any) {
		problems = append(problems, f+": "+fmt.Sprintf(format, a...))
	})
	if !ok || cs == nil {
		t.Fatalf("check config rejected: %v", problems)
	}
	return *cs
}

func runCheck(t *testing.T, target string, cc CheckConfig) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := newChecker(spec(t, target, cc), "svc", "").Check(ctx)
	if err != nil && !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("check error does not wrap ErrUnhealthy: %v", err)
	}
	return err
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestTCPCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := runCheck(t, addr, CheckConfig{Type: "tcp"}); err != nil {
		t.Fatalf("listening server: %v", err)
	}
	ln.Close()
	if err := runCheck(t, addr, CheckConfig{Type: "tcp"}); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("closed port: %v", err)
	}
}

func TestHTTPChecks(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "status: ready host=%s", r.Host) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "broken", 500) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tlsSrv := httptest.NewUnstartedServer(mux)
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the verify case rejects its certificate on purpose
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	plain := strings.TrimPrefix(srv.URL, "http://")
	secure := strings.TrimPrefix(tlsSrv.URL, "https://")

	cases := []struct {
		name    string
		target  string
		cc      CheckConfig
		healthy bool
		msg     string
	}{
		{"200", plain, CheckConfig{Type: "http", Path: "/ok"}, true, ""},
		{"500", plain, CheckConfig{Type: "http", Path: "/fail"}, false, "status 500"},
		{"redirect counts as an answer", plain, CheckConfig{Type: "http", Path: "/moved"}, true, ""},
		{"redirect not expected", plain, CheckConfig{Type: "http", Path: "/moved", ExpectStatus: []int{200}}, false, "status 302"},
		{"expected 500", plain, CheckConfig{Type: "http", Path: "/fail", ExpectStatus: []int{500, 503}}, true, ""},
		{"body match", plain, CheckConfig{Type: "http", Path: "/ok", BodyMatch: `status: (ready|busy)`}, true, ""},
		{"body mismatch", plain, CheckConfig{Type: "http", Path: "/ok", BodyMatch: `status: down`}, false, "body does not match"},
		{"host header", plain, CheckConfig{Type: "http", Path: "/ok", Host: "nfs.example", BodyMatch: `host=nfs\.example`}, true, ""},
		{"https", secure, CheckConfig{Type: "https", Path: "/ok", BodyMatch: "ready"}, true, ""},
		{"https with verification of a self-signed cert", secure, CheckConfig{Type: "https", Path: "/ok", TLSVerify: true}, false, "certificate"},
		{"https to a plain server", plain, CheckConfig{Type: "https", Path: "/ok"}, false, "GET"},
	}
	for _, c := range cases {
		err := runCheck(t, c.target, c.cc)
		if (err == nil) != c.healthy || (err != nil && !strings.Contains(err.Error(), c.msg)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestExecCheck(t *testing.T) {
	testenv.RequireTool(t, "sh", "dash")
	cases := []struct {
		cmd     string
		healthy bool
		msg     string
	}{
		{`test "$REPLICAD_RS_ADDRESS:$REPLICAD_RS_PORT/$REPLICAD_SERVICE" = "10.0.1.1:3306/svc"`, true, ""},
		{`echo degraded; exit 3`, false, "exit status 3: degraded"},
		{`sleep 30 & sleep 30`, false, "killed at the timeout"},
	}
	for _, c := range cases {
		cc := CheckConfig{Type: "exec", Command: []string{"sh", "-c", c.cmd}, Interval: time.Second, Timeout: 300 * time.Millisecond}
		ctx, cancel := context.WithTimeout(context.Background(), cc.Timeout)
		start := time.Now()
		err := newChecker(spec(t, "10.0.1.1:3306", cc), "svc", "").Check(ctx)
		cancel()
		if (err == nil) != c.healthy || (err != nil && !strings.Contains(err.Error(), c.msg)) {
			t.Errorf("%q: %v", c.cmd, err)
		}
		// Not a timing assertion on the check: a generous bound that only
		// fails if the process group was not killed (sleep 30).
		if time.Since(start) > 20*time.Second {
			t.Errorf("%q: the timeout did not kill the command's process group", c.cmd)
		}
	}
}

// scripted serves one canned reply per connection (a test peer, not a mock:
// it speaks the protocol bytes).
func scripted(t *testing.T, reply func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				reply(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestMySQLCheckAgainstScriptedServers(t *testing.T) {
	greeting, _ := hex.DecodeString(wireGreetingHex)
	readPacket := func(c net.Conn) []byte {
		_, p, err := wire.ReadMySQLPacket(c, 1<<16)
		if err != nil {
			return nil
		}
		return p
	}
	tooMany := scripted(t, func(c net.Conn) {
		c.Write(wire.AppendMySQLPacket(nil, 0, append([]byte{0xff, 0x10, 0x04}, "Too many connections"...)))
	})
	if err := runCheck(t, tooMany, CheckConfig{Type: "mysql"}); err == nil || !strings.Contains(err.Error(), "1040") {
		t.Errorf("too many connections: %v", err)
	}
	garbage := scripted(t, func(c net.Conn) { c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n")) })
	if err := runCheck(t, garbage, CheckConfig{Type: "mysql"}); err == nil {
		t.Error("an SSH server passed the mysql check")
	}
	var gotUser string
	switchThenOK := scripted(t, func(c net.Conn) {
		c.Write(greeting)
		login := readPacket(c)
		user, _, _ := strings.Cut(string(login[32:]), "\x00")
		gotUser = user
		c.Write(wire.AppendMySQLPacket(nil, 2, append([]byte{0xfe}, "mysql_native_password\x00abcdefghijklmnopqrst\x00"...)))
		if p := readPacket(c); len(p) != 20 {
			return // wrong scramble length: close without OK
		}
		c.Write(wire.AppendMySQLPacket(nil, 4, []byte{0, 0, 0, 2, 0, 0, 0}))
	})
	if err := runCheck(t, switchThenOK, CheckConfig{Type: "mysql", User: "monitor", Password: "pw"}); err != nil || gotUser != "monitor" {
		t.Errorf("auth switch then OK: %v (user %q)", err, gotUser)
	}
	denied := scripted(t, func(c net.Conn) {
		c.Write(greeting)
		readPacket(c)
		c.Write(wire.AppendMySQLPacket(nil, 2, append([]byte{0xff, 0x15, 0x04, '#', '2', '8', '0', '0', '0'}, "Access denied"...)))
	})
	if err := runCheck(t, denied, CheckConfig{Type: "mysql"}); err != nil {
		t.Errorf("without a configured user, access denied proves the server is up: %v", err)
	}
	if err := runCheck(t, denied, CheckConfig{Type: "mysql", User: "monitor"}); err == nil || !strings.Contains(err.Error(), "1045") {
		t.Errorf("with a configured user, access denied is a failure: %v", err)
	}
}

// The greeting captured from MariaDB 10.11 (see lvs/wire).
const wireGreetingHex = "640000000a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100030000005a483a2a60263a3200fef7080200ff81150000000000001d0000002c26784b4c7e546b3c2a5b6d006d7973716c5f6e61746976655f70617373776f726400"

func TestNFSCheckAgainstScriptedServers(t *testing.T) {
	reply := func(words ...uint32) func(c net.Conn) {
		return func(c net.Conn) {
			call, err := wire.ReadRecord(c, 1024)
			if err != nil || len(call) < 24 {
				return
			}
			xid := binary.BigEndian.Uint32(call)
			if binary.BigEndian.Uint32(call[12:]) != wire.NFSProgram {
				words = []uint32{1, 0, 0, 0, 1} // PROG_UNAVAIL
			}
			body := binary.BigEndian.AppendUint32(nil, xid)
			for _, w := range words {
				body = binary.BigEndian.AppendUint32(body, w)
			}
			c.Write(append(binary.BigEndian.AppendUint32(nil, 0x80000000|uint32(len(body))), body...))
		}
	}
	ok := scripted(t, reply(1, 0, 0, 0, 0))
	if err := runCheck(t, ok, CheckConfig{Type: "nfs"}); err != nil {
		t.Errorf("SUCCESS: %v", err)
	}
	mismatch := scripted(t, reply(1, 0, 0, 0, 2, 3, 3))
	if err := runCheck(t, mismatch, CheckConfig{Type: "nfs"}); err == nil || !strings.Contains(err.Error(), "supports 3..3") {
		t.Errorf("PROG_MISMATCH: %v", err)
	}
	wrongXID := scripted(t, func(c net.Conn) {
		wire.ReadRecord(c, 1024)
		c.Write(wire.NullCall(1, 2, 3)) // a CALL, not a reply
	})
	if err := runCheck(t, wrongXID, CheckConfig{Type: "nfs"}); err == nil {
		t.Error("a call in place of a reply passed")
	}
}

// Real peers: the Debian mariadb-server and nfs-ganesha the testbed uses.

func startMariaDB(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t) // mariadbd runs as root here (--user=root)
	installDB := testenv.RequireTool(t, "mariadb-install-db", "mariadb-server")
	mariadbd := testenv.RequireTool(t, "mariadbd", "mariadb-server")
	dir := t.TempDir()
	if out, err := exec.Command(installDB, "--datadir="+dir+"/data", "--user=root", "--auth-root-authentication-method=normal").CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	port := freePort(t)
	cmd := exec.Command(mariadbd, "--no-defaults", "--datadir="+dir+"/data", "--user=root",
		fmt.Sprintf("--port=%d", port), "--bind-address=127.0.0.1", "--socket="+dir+"/sock", "--pid-file="+dir+"/pid",
		"--skip-log-bin", "--innodb-buffer-pool-size=16M")
	log, _ := os.Create(filepath.Join(dir, "log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, cmd, filepath.Join(dir, "log"))
	return addr
}

func waitListening(t *testing.T, addr string, cmd *exec.Cmd, log string) {
	t.Helper()
	for range 300 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(log)
	t.Fatalf("%s did not start listening on %s:\n%s", cmd.Path, addr, b)
}

func TestMySQLCheckAgainstMariaDB(t *testing.T) {
	t.Parallel()
	addr := startMariaDB(t)
	if err := runCheck(t, addr, CheckConfig{Type: "mysql"}); err != nil {
		t.Errorf("anonymous probe (access denied counts as up): %v", err)
	}
	if err := runCheck(t, addr, CheckConfig{Type: "mysql", User: "root"}); err != nil {
		t.Errorf("login as root with no password: %v", err)
	}
	if err := runCheck(t, addr, CheckConfig{Type: "mysql", User: "root", Password: "wrong"}); err == nil || !strings.Contains(err.Error(), "1045") {
		t.Errorf("wrong password for a configured user: %v", err)
	}
}

func TestNFSCheckAgainstGanesha(t *testing.T) {
	t.Parallel()
	testenv.RequireRoot(t)
	ganesha := testenv.RequireTool(t, "ganesha.nfsd", "nfs-ganesha")
	dir := t.TempDir()
	export := filepath.Join(dir, "export")
	os.Mkdir(export, 0o755)
	port := freePort(t)
	conf := fmt.Sprintf(`NFS_CORE_PARAM { Protocols = 4; NFS_Port = %d; Bind_addr = 127.0.0.1; Enable_NLM = false; Enable_RQUOTA = false; }
NFSV4 { Graceless = true; }
EXPORT { Export_Id = 1; Path = %s; Pseudo = /export; Access_Type = RW; Squash = No_Root_Squash; SecType = sys; FSAL { Name = VFS; } }
`, port, export)
	os.WriteFile(filepath.Join(dir, "ganesha.conf"), []byte(conf), 0o644)
	logf := filepath.Join(dir, "ganesha.log")
	cmd := exec.Command(ganesha, "-F", "-f", filepath.Join(dir, "ganesha.conf"), "-L", logf, "-p", filepath.Join(dir, "pid"), "-N", "NIV_EVENT")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, cmd, logf)
	if err := runCheck(t, addr, CheckConfig{Type: "nfs", NFSVersion: 4}); err != nil {
		t.Errorf("NULL to NFSv4: %v", err)
	}
	if err := runCheck(t, addr, CheckConfig{Type: "nfs", NFSVersion: 3}); err == nil || !strings.Contains(err.Error(), "mismatch") {
		t.Errorf("NULL to NFSv3 on a v4-only server: %v", err)
	}
}
