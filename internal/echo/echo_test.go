package echo

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestEcho(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler("e1"))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/a/b?x=1", strings.NewReader("hello"))
	req.Header.Set("X-Request-Id", "rid-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var rep Reply
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if rep.Server != "e1" || rep.Method != "POST" || rep.Path != "/a/b" || rep.Query != "x=1" || rep.RequestID != "rid-1" || rep.BodyBytes != 5 {
		t.Fatalf("reply %+v", rep)
	}

	tests := []struct {
		path   string
		status int
	}{
		{"/status/503", 503},
		{"/status/99", 400},
		{"/delay/10ms", 200},
		{"/delay/1h", 400},
	}
	for _, tc := range tests {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
	}

	resp, err = http.Get(srv.URL + "/sse?n=2&interval=10ms")
	if err != nil {
		t.Fatal(err)
	}
	events := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			events++
		}
	}
	resp.Body.Close()
	if events != 2 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("sse: %d events, content type %q", events, resp.Header.Get("Content-Type"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "\x01\x02\x03" {
		t.Fatalf("ws echo %q %v", msg, err)
	}
}
