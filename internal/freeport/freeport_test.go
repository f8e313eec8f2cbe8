package freeport

import "testing"

// Ports come from below the ephemeral range, distinct and free.
func TestLoopback(t *testing.T) {
	ports, err := Loopback(12)
	if err != nil {
		t.Fatal(err)
	}
	low := EphemeralLow()
	seen := map[int]bool{}
	for _, p := range ports {
		if p >= low || p < lowest {
			t.Errorf("port %d: want it in [%d, %d), below the ephemeral range", p, lowest, low)
		}
		if seen[p] {
			t.Errorf("port %d picked twice", p)
		}
		seen[p] = true
		if !Free(p) {
			t.Errorf("port %d is not free", p)
		}
	}
}
