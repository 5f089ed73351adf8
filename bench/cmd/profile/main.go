// Command portico-profile runs the Portico gateway in-process with
// net/http/pprof on a loopback port of its own, so the gateway can be
// profiled under the peer benchmark's load (the gateway itself has no pprof
// endpoint). bench/profile.sh builds it, starts the benchmark backend, drives
// scenario 1 (or, with PROFILE_SCENARIO=s3, scenario 3) with wrk and records
// CPU and allocation profiles.
//
//	portico-profile -config bench/configs/portico-plain.yaml -pprof 127.0.0.1:29150
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/portico-dev/portico/bench"
	"github.com/portico-dev/portico/internal/gateway"
	"github.com/portico-dev/portico/internal/gateway/config"
)

func main() {
	cfgPath := flag.String("config", "bench/configs/portico-plain.yaml", "gateway configuration (its ${VAR}s are read from the environment)")
	pprofAddr := flag.String("pprof", "127.0.0.1:29150", "loopback host:port for /debug/pprof/")
	token := flag.Bool("token", false, "print the policies scenario's JWT for $PORTICO_BENCH_JWT_SECRET, _ISSUER and _AUDIENCE, and exit")
	flag.Parse()
	if *token {
		tok, err := bench.BenchToken([]byte(os.Getenv("PORTICO_BENCH_JWT_SECRET")), os.Getenv("PORTICO_BENCH_JWT_ISSUER"),
			os.Getenv("PORTICO_BENCH_JWT_AUDIENCE"), time.Now(), 24*time.Hour)
		if err != nil {
			fmt.Fprintln(os.Stderr, "portico-profile:", err)
			os.Exit(1)
		}
		fmt.Println(tok)
		return
	}
	if err := run(*cfgPath, *pprofAddr); err != nil {
		fmt.Fprintln(os.Stderr, "portico-profile:", err)
		os.Exit(1)
	}
}

func run(cfgPath, pprofAddr string) error {
	host, _, err := net.SplitHostPort(pprofAddr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-pprof %s is not a loopback address", pprofAddr)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	gateway.TuneGC() // as portico gateway does
	gw, err := gateway.New(cfg, gateway.WithLogger(logger))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", pprofAddr)
	if err != nil {
		return err
	}
	dbg := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := dbg.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("pprof listener failed", "err", err)
		}
	}()
	defer dbg.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return gw.Run(ctx)
}
