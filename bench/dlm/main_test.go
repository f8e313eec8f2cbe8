package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs every measurement once with tiny counts: the program's
// setup, checks and table work. Nothing is asserted about the figures.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six DLM nodes and waits for a failure to be noticed")
	}
	var out bytes.Buffer
	o := options{
		rounds: 1, duration: 50 * time.Millisecond, samples: 20, hops: 20, inflight: 4, locks: 600, recoveryRounds: 1,
		only:   map[string]bool{"local": true, "remote": true, "pingpong": true, "recovery": true},
		timing: timing{deadTimeout: time.Second},
	}
	if err := run(&out, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"local lock+unlock pairs/s, sync", "remote acquire, lookup + request, median",
		"remote acquire, master known, p99", "socket events of remote acquires", "two-node EX ping-pong", "recovery of 600 locks: all done",
		"afterwards: survivors hold 201 + 201 locks, master 301 resources"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
