// Package bytesize parses and prints byte counts the way operators write
// them in configs and read them in status output: "4KiB", "32 MiB", "1G"
// (decimal units are accepted but binary units are printed).
package bytesize
