package freeport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the lowest port Loopback picks, above the usual well-known
// and registered services' crowd.
const lowest = 10240

// Loopback returns n distinct TCP ports free on 127.0.0.1 now, below the
// kernel's ephemeral range where it can, else from it.
func Loopback(n int) ([]int, error) {
	lo, hi := lowest, EphemeralLow()
	seen := map[int]bool{}
	var ports []int
	for tries := 0; len(ports) < n && tries < 64*n && hi-lo > 2*n; tries++ {
		p := lo + rand.IntN(hi-lo)
		if !seen[p] && Free(p) {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		if p := l.Addr().(*net.TCPAddr).Port; !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// Free reports whether port can be bound on 127.0.0.1 now.
func Free(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// EphemeralLow is the first port of the kernel's ephemeral range (Linux's
// default if it cannot be read).
func EphemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if lo, err := strconv.Atoi(f[0]); err == nil && lo > 0 {
				return lo
			}
		}
	}
	return 32768
}
