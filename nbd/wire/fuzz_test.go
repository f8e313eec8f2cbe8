package wire

import (
	"bytes"
	"testing"
)

// FuzzHandshake feeds arbitrary client bytes through the handshake decoders
// in the order the server uses them.
func FuzzHandshake(f *testing.F) {
	f.Add(append(be.AppendUint32(nil, 3), append(be.AppendUint64(nil, MagicOption), append(be.AppendUint32(nil, OptGo), append(be.AppendUint32(nil, 9), infoData("x", InfoBlockSize)...)...)...)...))
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 4 {
			return
		}
		if _, err := ParseClientFlags(be.Uint32(b)); err != nil {
			return
		}
		r := bytes.NewReader(b[4:])
		for i := 0; i < 16; i++ {
			o, _, err := ReadOption(r, 65536)
			if err != nil {
				return
			}
			switch o.ID {
			case OptGo, OptInfo:
				if req, err := ParseInfoRequest(o.Data); err == nil {
					if len(req.Name) > MaxNameLength || bytes.IndexByte([]byte(req.Name), 0) >= 0 {
						t.Fatalf("accepted bad name %q", req.Name)
					}
				}
			case OptExportName:
				ParseExportName(o.Data)
			}
		}
	})
}

// FuzzRequest decodes and checks arbitrary request headers.
func FuzzRequest(f *testing.F) {
	var b [RequestSize]byte
	PutRequest(&b, Request{Type: CmdWrite, Length: 4096})
	f.Add(b[:], uint64(1<<20), false)
	f.Fuzz(func(t *testing.T, raw []byte, size uint64, ro bool) {
		var h [RequestSize]byte
		copy(h[:], raw)
		r, err := ParseRequest(&h)
		if err != nil {
			return
		}
		if Check(r, size, 1<<25, ro) == 0 {
			switch r.Type {
			case CmdRead, CmdWrite, CmdTrim, CmdWriteZeroes:
				if r.Length == 0 || r.Offset+uint64(r.Length) < r.Offset || r.Offset+uint64(r.Length) > size {
					t.Fatalf("accepted out-of-range request %+v on size %d", r, size)
				}
				if ro {
					if r.Type != CmdRead {
						t.Fatalf("accepted modification on read-only export: %+v", r)
					}
				}
			}
		}
	})
}
