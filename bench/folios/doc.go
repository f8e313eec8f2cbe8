// Command folios prints how a file's pages sit in the page cache: how many
// are resident and the sizes of the folios holding them.
//
// On ext4 with large folios (Linux 6.x), a small buffered write walks every
// block of the folio it lands in, so its cost depends on these sizes (see
// docs/benchmarks.md, Replication). The replication benchmark drops its
// volumes' caches so that every setup starts alike; this command checks
// that, and shows what reads and large writes leave behind.
//
//	go run ./bench/folios FILE [BYTES]
//
// It needs root (/proc/kpageflags and the frame numbers in
// /proc/self/pagemap). It maps the file read-only and touches only pages
// that mincore reports resident, so it brings nothing into the cache.
package main
