package h1server

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// heads are request heads: some this server reads, some it hands over.
var heads = []string{
	"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
	"GET /x/y?z=1&w=%20 HTTP/1.1\r\nHost: a.example:8080\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
	"GET /caf%C3%A9/a%2Fb HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a;b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a? HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.1\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Space : a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nx-lower-case: v\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Tab:\tv\t\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-Ctl: a\x01b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-High: caf\xc3\xa9\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n",
	"GET / HTTP/1.1\r\nHost:\r\n\r\n",
	"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\n",
	"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
	"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
	"get / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
}

// TestParseHeadAgreesWithNetHTTP: whatever parseHead accepts, net/http
// reads the same way; whatever it refuses, it hands over (never errs).
func TestParseHeadAgreesWithNetHTTP(t *testing.T) {
	accepted := 0
	for _, h := range heads {
		if checkAgainstNetHTTP(t, []byte(h)) {
			accepted++
		}
	}
	if accepted < 10 {
		t.Fatalf("only %d of %d heads accepted", accepted, len(heads))
	}
}

func FuzzParseHead(f *testing.F) {
	for _, h := range heads {
		f.Add([]byte(h))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		i := bytes.Index(b, []byte("\r\n\r\n"))
		if i < 0 {
			return
		}
		checkAgainstNetHTTP(t, b[:i+4])
	})
}

// checkAgainstNetHTTP reports whether parseHead accepted head, after
// checking that net/http reads an accepted head identically.
func checkAgainstNetHTTP(t *testing.T, head []byte) bool {
	t.Helper()
	hdr := make(http.Header)
	h, ok := parseHead(head, hdr)
	var u url.URL
	if ok {
		ok = parseTarget(h.target, &u)
	}
	if !ok {
		return false
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		t.Fatalf("%q: accepted here, refused by net/http: %v", head, err)
	}
	want := map[string]any{
		"method": req.Method, "target": req.RequestURI, "host": req.Host, "minor": req.ProtoMinor,
		"close": req.Close, "header": req.Header, "url": *req.URL,
	}
	got := map[string]any{
		"method": h.method, "target": h.target, "host": h.host, "minor": h.minor,
		"close": h.close, "header": hdr, "url": u,
	}
	if len(req.Header["Content-Length"]) > 0 {
		want["length"], got["length"] = req.ContentLength, h.contentLength
	}
	for k := range want {
		if !reflect.DeepEqual(want[k], got[k]) {
			t.Fatalf("%q: %s read as %#v, net/http reads %#v", head, k, got[k], want[k])
		}
	}
	return true
}

func TestParseHeadHandsOver(t *testing.T) {
	for _, h := range heads {
		if strings.Contains(h, "Transfer-Encoding") || strings.Contains(h, "Upgrade") || strings.Contains(h, "Expect") ||
			strings.Contains(h, "HTTP/2.0") || strings.Contains(h, "\r\n b") || !strings.Contains(h, "\r\n") {
			if _, ok := parseHead([]byte(h), make(http.Header)); ok {
				t.Errorf("%q was not handed over", h)
			}
		}
	}
}
