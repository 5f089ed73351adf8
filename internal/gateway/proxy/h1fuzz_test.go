package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// scriptConn is a net.Conn that answers with a fixed byte stream and
// discards what is written.
type scriptConn struct {
	r *bytes.Reader
}

func (c *scriptConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzH1Response feeds arbitrary bytes to the response parser as an
// endpoint's answer. It must never panic, and a body it accepts must match
// the framing it reported.
func FuzzH1Response(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-A\r\n\r\n2\r\nok\r\n0\r\nX-A: 1\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	pool := &hostPool{t: &h1Client{maxIdle: 1, idleTimeout: time.Minute}}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newH1Conn(pool, &scriptConn{r: bytes.NewReader(data)})
		pool.open++
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://svc.example/", nil)
		res, _, err := c.roundTrip(req.Context(), req, sendOptions{})
		if err != nil {
			return
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err == nil && res.ContentLength >= 0 && int64(len(body)) != res.ContentLength {
			t.Fatalf("body of %d bytes with ContentLength %d", len(body), res.ContentLength)
		}
		if res.StatusCode < 100 || res.StatusCode > 999 {
			t.Fatalf("status %d", res.StatusCode)
		}
		pool.closeIdle()
	})
}
