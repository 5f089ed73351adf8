package etcdtest

import (
	"context"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, endpoints []string, key string) (string, error) {
	t.Helper()
	cli := Client(t, endpoints)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		return "", err
	}
	return string(resp.Kvs[0].Value), nil
}

// TestStartStopRestart: a private server answers, stops answering when
// stopped, and answers again with its data after a restart on the same
// ports.
func TestStartStopRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	eps := s.Endpoints()
	if len(eps) != 1 || !strings.HasPrefix(eps[0], "http://127.0.0.1:") {
		t.Fatalf("Endpoints() = %v, want one loopback URL", eps)
	}
	cli := Client(t, eps)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}

	s.Stop()
	if _, err := get(t, eps, "k"); err == nil {
		t.Fatal("get from a stopped server succeeded")
	}
	s.Stop() // stopping twice is harmless

	s.Restart()
	if got := s.Endpoints(); got[0] != eps[0] {
		t.Fatalf("restart moved the server from %v to %v", eps, got)
	}
	v, err := get(t, eps, "k")
	if err != nil || v != "v" {
		t.Fatalf("after restart: get k = %q, %v; want the value written before", v, err)
	}
}

// TestStartsIndependentServers: two servers of one test do not share
// ports or data.
func TestStartsIndependentServers(t *testing.T) {
	t.Parallel()
	a, b := Start(t), Start(t)
	if a.Endpoints()[0] == b.Endpoints()[0] {
		t.Fatalf("both servers at %v", a.Endpoints())
	}
	cli := Client(t, a.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "only-a", "1"); err != nil {
		t.Fatal(err)
	}
	if v, err := get(t, b.Endpoints(), "only-a"); err != nil || v != "" {
		t.Fatalf("second server: get only-a = %q, %v; want absent", v, err)
	}
}

// TestShortLeases: the servers grant one-second leases as asked, which
// the registry's expiry tests rely on.
func TestShortLeases(t *testing.T) {
	t.Parallel()
	s := Start(t)
	cli := Client(t, s.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := cli.Grant(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if l.TTL != 1 {
		t.Fatalf("granted TTL %ds for 1s", l.TTL)
	}
}

func TestShared(t *testing.T) {
	eps := Shared(t)
	if _, err := get(t, eps, "etcdtest-shared"); err != nil {
		t.Fatalf("shared etcd at %v: %v", eps, err)
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	b.Write([]byte("0123456789"))
	b.Write([]byte("ab"))
	if got, want := b.String(), "[earlier output dropped]\n456789ab"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	b.Reset()
	b.Write([]byte("x"))
	if got := b.String(); got != "x" {
		t.Fatalf("after Reset: %q", got)
	}
}
