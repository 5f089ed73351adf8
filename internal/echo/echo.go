// Package echo is a small HTTP backend that describes each request it gets.
// It is the backend of the quick start and of tests: it needs nothing but the
// portico binary.
package echo

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

// Reply is the JSON document the echo handler answers with.
type Reply struct {
	Server     string              `json:"server"`
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	Query      string              `json:"query,omitempty"`
	Host       string              `json:"host"`
	Proto      string              `json:"proto"`
	RemoteAddr string              `json:"remote_addr"`
	RequestID  string              `json:"request_id,omitempty"`
	Headers    map[string][]string `json:"headers"`
	BodyBytes  int64               `json:"body_bytes"`
}

// MaxBody is the most request body the echo handler reads.
const MaxBody = 1 << 20

// Handler returns the echo handler. name identifies this instance in replies
// (the quick start runs two, to show load balancing).
//
//	/sse?n=N&interval=D   N server-sent events, one every D
//	/ws                   WebSocket echo
//	/status/{code}        answers with that status
//	/delay/{duration}     answers after the duration (at most 30s)
//	anything else         the request described as JSON
func Handler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/sse", sse)
	mux.HandleFunc("/ws", ws)
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || code < 200 || code > 599 {
			http.Error(w, "status must be 200-599", http.StatusBadRequest)
			return
		}
		describe(name, w, r, code)
	})
	mux.HandleFunc("/delay/{d}", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.PathValue("d"))
		if err != nil || d < 0 || d > 30*time.Second {
			http.Error(w, "delay must be a duration up to 30s", http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		describe(name, w, r, http.StatusOK)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { describe(name, w, r, http.StatusOK) })
	return mux
}

func describe(name string, w http.ResponseWriter, r *http.Request, status int) {
	n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, MaxBody))
	rep := Reply{
		Server: name, Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Host: r.Host,
		Proto: r.Proto, RemoteAddr: r.RemoteAddr, RequestID: r.Header.Get("X-Request-Id"),
		Headers: r.Header, BodyBytes: n,
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Echo-Server", name)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}

func sse(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	if n <= 0 || n > 1000 {
		n = 5
	}
	interval, err := time.ParseDuration(r.URL.Query().Get("interval"))
	if err != nil || interval < 0 || interval > 10*time.Second {
		interval = 500 * time.Millisecond
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	for i := 1; i <= n; i++ {
		if i > 1 {
			select {
			case <-time.After(interval):
			case <-r.Context().Done():
				return
			}
		}
		if _, err := fmt.Fprintf(w, "id: %d\ndata: event %d\n\n", i, i); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func ws(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(MaxBody)
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, msg); err != nil {
			return
		}
	}
}
