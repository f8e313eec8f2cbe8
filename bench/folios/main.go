package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/replicad/replicad/internal/bytesize"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "folios:", err)
		os.Exit(1)
	}
}

// kpfCompoundTail is the kpageflags bit of every page of a folio but its
// first (Documentation/admin-guide/mm/pagemap.rst).
const kpfCompoundTail = 1 << 16

func run(args []string, w io.Writer) error {
	if len(args) < 1 || len(args) > 2 {
		return fmt.Errorf("usage: folios FILE [BYTES]")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	n := st.Size()
	if len(args) == 2 {
		if n, err = strconv.ParseInt(args[1], 10, 64); err != nil || n <= 0 || n > st.Size() {
			return fmt.Errorf("bytes %q: want 1 to %d", args[1], st.Size())
		}
	}
	const page = 4096
	pages := int(n / page)
	if pages == 0 {
		return fmt.Errorf("%s: less than a page", args[0])
	}
	m, err := unix.Mmap(int(f.Fd()), 0, pages*page, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	defer unix.Munmap(m)
	resident := make([]byte, pages)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(m))), uintptr(len(m)), uintptr(unsafe.Pointer(unsafe.SliceData(resident)))); e != 0 {
		return fmt.Errorf("mincore: %w", e)
	}
	pagemap, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return err
	}
	defer pagemap.Close()
	kflags, err := os.Open("/proc/kpageflags")
	if err != nil {
		return err
	}
	defer kflags.Close()
	base := uintptr(unsafe.Pointer(unsafe.SliceData(m))) / page
	read := func(r *os.File, at uint64) (uint64, error) {
		var b [8]byte
		if _, err := r.ReadAt(b[:], int64(at*8)); err != nil {
			return 0, fmt.Errorf("%s: %w", r.Name(), err)
		}
		return binary.LittleEndian.Uint64(b[:]), nil
	}
	// sizes counts folios by their size in pages (the last one may be cut
	// short at BYTES).
	sizes := map[int]int{}
	// cur is the length so far of the folio being walked.
	count, cur := 0, 0
	var touched byte
	end := func() {
		if cur > 0 {
			sizes[cur]++
		}
		cur = 0
	}
	for i := range pages {
		if resident[i]&1 == 0 {
			end()
			continue
		}
		count++
		touched += m[i*page] // map the cached page (mincore said it is there)
		e, err := read(pagemap, uint64(base)+uint64(i))
		if err != nil {
			return err
		}
		pfn := e & (1<<55 - 1)
		if pfn == 0 {
			return fmt.Errorf("no frame numbers in /proc/self/pagemap (run as root)")
		}
		fl, err := read(kflags, pfn)
		if err != nil {
			return err
		}
		if fl&kpfCompoundTail != 0 {
			cur++
			continue
		}
		end()
		cur = 1
	}
	end()
	runtime.KeepAlive(touched) // keeps the loads that map the pages
	var folios []string
	for _, s := range slices.Sorted(maps.Keys(sizes)) {
		folios = append(folios, fmt.Sprintf("%d × %s", sizes[s], bytesize.Format(int64(s)*page)))
	}
	fmt.Fprintf(w, "%s: %d of %d pages resident; folios: %s\n", args[0], count, pages, strings.Join(folios, ", "))
	return nil
}
