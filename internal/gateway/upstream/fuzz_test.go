package upstream

import "testing"

// FuzzParseGRPCHealthResponse checks the gRPC health response parser never
// panics and never reads a status out of a frame it calls invalid.
func FuzzParseGRPCHealthResponse(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 2, 0x08, 0x01})
	f.Add([]byte{0, 0, 0, 0, 4, 0x0d, 1, 2, 3})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		status, err := ParseGRPCHealthResponse(b)
		if err != nil && status != 0 {
			t.Fatalf("status %d with error %v", status, err)
		}
		if status < 0 {
			t.Fatalf("negative status %d", status)
		}
	})
}
