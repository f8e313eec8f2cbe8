package bytesize

import "testing"

func TestParse(t *testing.T) {
	good := map[string]int64{
		"0": 0, "512": 512, "4KiB": 4096, "4k": 4096, "4 KiB": 4096, "32MiB": 32 << 20, "1.5GiB": 3 << 29,
		"10GB": 10e9, "1T": 1 << 40, "7b": 7, "2 mib": 2 << 20,
	}
	for in, want := range good {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "KiB", "-1", "1.5B", "4 furlongs", "1e3", "99999999PiB"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 4096: "4 KiB", 1536: "1.5 KiB", 1 << 30: "1 GiB", 3 << 29: "1.5 GiB"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}
