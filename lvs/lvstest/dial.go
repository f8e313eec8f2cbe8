package lvstest

import (
	"bufio"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Dial opens a TCP connection from the worker's namespace, from local if
// it is valid. The connection works from any goroutine.
func (w *Worker) Dial(local netip.Addr, addr string) (net.Conn, error) {
	var conn net.Conn
	var err error
	w.Do(func() {
		d := net.Dialer{Timeout: 3 * time.Second}
		if local.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
		}
		conn, err = d.Dial("tcp", addr)
	})
	return conn, err
}

// Name connects to a NameServer (through whatever balances addr), reads
// the name it answers with and closes.
func (w *Worker) Name(local netip.Addr, addr string) (string, error) {
	conn, err := w.Dial(local, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}
