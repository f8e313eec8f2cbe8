package testenv

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireRoot skips the test unless it runs as root. Root-only tests are
// expected to run in CI, which runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if InCI() {
			t.Fatalf("%s needs root and CI runs as root, but euid is %d", t.Name(), os.Geteuid())
		}
		t.Skipf("skipping %s: needs root (namespaces, loop devices or mounts); run the suite as root", t.Name())
	}
}

// RequireTool returns the path of an executable, skipping the test if it is
// missing (failing under CI). pkg names the Debian package that provides it.
func RequireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if InCI() {
			t.Fatalf("%s not found under CI: the test script should have installed Debian package %s", name, pkg)
		}
		t.Skipf("skipping: %s not found (apt-get install %s, or run scripts/test which installs it)", name, pkg)
	}
	return p
}

// Seed returns the seed for a randomized test: REPLICAD_SEED if set, else a
// fresh one. It logs the seed so a failure can be replayed.
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("REPLICAD_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("REPLICAD_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with REPLICAD_SEED=%d)", seed, seed)
	return seed
}

// Rand returns a generator seeded by Seed.
func Rand(t testing.TB) *rand.Rand {
	t.Helper()
	s := Seed(t)
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}
