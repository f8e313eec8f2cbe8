package main

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFolios: a file written in 4 KiB writes into an empty cache sits in
// 4 KiB folios, all resident; dropped, nothing is resident; and a bad
// argument is an error.
func TestFolios(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for the frame numbers in /proc/self/pagemap and /proc/kpageflags")
	}
	f, err := os.CreateTemp(t.TempDir(), "folios-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for i := range 1024 {
		block[0] = byte(i)
		if _, err := f.WriteAt(block, int64(i)*4096); err != nil {
			t.Fatal(err)
		}
	}
	check := func(want string) {
		t.Helper()
		var out strings.Builder
		if err := run([]string{f.Name()}, &out); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimPrefix(strings.TrimSpace(out.String()), f.Name()+": "); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	check("1024 of 1024 pages resident; folios: 1024 × 4 KiB")
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	check("0 of 1024 pages resident; folios:")
	if err := run([]string{f.Name(), "8192000"}, &strings.Builder{}); err == nil {
		t.Fatal("BYTES beyond the file's size: no error")
	}
}
