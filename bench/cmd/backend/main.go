// Command bench-backend is the fast upstream of the peer benchmark: a plain
// net/http server on a loopback address that answers every path with a small
// JSON body, and /64k with a 64 KiB body, over keep-alive connections.
//
//	bench-backend -addr 127.0.0.1:29101
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// smallBody is the ~200-byte JSON answer, the same shape as the gateway's
// own micro-benchmarks use.
var smallBody = []byte(`{"id":42,"name":"portico","tags":["gateway","proxy","bench"],"ok":true,"padding":"` +
	"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" + `"}`)

func main() {
	addr := flag.String("addr", "127.0.0.1:29101", "loopback host:port to listen on")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "bench-backend:", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %s is not a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func handler() http.Handler {
	large := bytes.Repeat([]byte("0123456789abcdef"), 64*1024/16)
	smallLen := strconv.Itoa(len(smallBody))
	largeLen := strconv.Itoa(len(large))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		h := w.Header()
		if r.URL.Path == "/64k" {
			h["Content-Type"] = []string{"application/octet-stream"}
			h["Content-Length"] = []string{largeLen}
			_, _ = w.Write(large)
			return
		}
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{smallLen}
		_, _ = w.Write(smallBody)
	})
}
