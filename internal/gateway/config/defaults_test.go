package config

import (
	"reflect"
	"testing"
	"time"
)

func TestApplyDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, `
listeners:
  - name: tls
    address: ":8443"
    tls: {cert_file: testdata/tls/cert.pem, key_file: testdata/tls/key.pem}
services:
  - name: s
    endpoints: [{url: "http://10.0.0.1:80"}]
routes:
  - name: r
    match: {path: /}
    service: s
  - name: d
    match: {path: /d}
    direct_response: {}
`, nil)
	l := cfg.Listeners[0]
	if l.Protocol != "https" || l.TLS.MinVersion != "1.2" || l.ReadHeaderTimeout.D() != 10*time.Second ||
		l.ReadTimeout.D() != 60*time.Second || l.WriteTimeout.D() != 60*time.Second ||
		l.IdleTimeout.D() != 120*time.Second || l.MaxHeaderBytes != 64<<10 {
		t.Errorf("listener defaults = %+v", l)
	}
	if cfg.Admin.Address != "127.0.0.1:9901" || !cfg.Admin.Enabled() {
		t.Errorf("admin = %+v", cfg.Admin)
	}
	if cfg.Shutdown.DrainTimeout.D() != 30*time.Second || cfg.Shutdown.Delay != 0 {
		t.Errorf("shutdown = %+v", cfg.Shutdown)
	}
	if cfg.Logging.Level != "info" || cfg.Logging.Format != "json" {
		t.Errorf("logging = %+v", cfg.Logging)
	}
	a := cfg.AccessLog
	if a.Enabled == nil || !*a.Enabled || a.Output != "stdout" || !reflect.DeepEqual(a.RedactQuery, DefaultRedactQuery()) {
		t.Errorf("access log = %+v", a)
	}
	if cfg.RequestID.Header != "X-Request-Id" {
		t.Errorf("request id header = %q", cfg.RequestID.Header)
	}
	s := cfg.Services[0]
	want := Transport{DialTimeout: Duration(5 * time.Second), KeepAlive: Duration(30 * time.Second), TLSHandshakeTimeout: Duration(10 * time.Second), IdleConnTimeout: Duration(90 * time.Second), MaxIdleConnsPerHost: 256}
	if s.Endpoints[0].Weight != 1 || !reflect.DeepEqual(s.Transport, want) {
		t.Errorf("service defaults = %+v", s)
	}
	r := cfg.Routes[0]
	if r.Timeout.D() != 60*time.Second || r.MaxBodyBytes != 10<<20 || r.WebSocket == nil || !*r.WebSocket {
		t.Errorf("route defaults = %+v", r)
	}
	if d := cfg.Routes[1].DirectResponse; d.Status != 200 || d.ContentType != "text/plain; charset=utf-8" {
		t.Errorf("direct response defaults = %+v", d)
	}

	before := cfg.Redacted()
	cfg.ApplyDefaults()
	if !reflect.DeepEqual(before, cfg.Redacted()) {
		t.Error("ApplyDefaults is not idempotent")
	}
}

func TestDefaultsKeepExplicitEmptyRedactList(t *testing.T) {
	t.Parallel()
	cfg := mustParse(t, "access_log:\n  enabled: false\n  redact_query: []\nadmin:\n  address: \"off\"\n", nil)
	if cfg.AccessLog.RedactQuery == nil || len(cfg.AccessLog.RedactQuery) != 0 {
		t.Errorf("redact_query = %#v, want an empty list kept", cfg.AccessLog.RedactQuery)
	}
	if cfg.AccessLog.IsEnabled() || cfg.Admin.Enabled() {
		t.Errorf("access log enabled = %v, admin enabled = %v; want both off", cfg.AccessLog.IsEnabled(), cfg.Admin.Enabled())
	}
}

func TestAccessorsOnZeroValues(t *testing.T) {
	t.Parallel()
	var r Route
	if !r.WebSocketEnabled() {
		t.Error("zero Route: WebSocketEnabled = false, want the default true")
	}
	if n, ok := r.BodyLimit(); !ok || n != DefaultMaxBodyBytes {
		t.Errorf("zero Route: BodyLimit = %d, %v", n, ok)
	}
	if !(AccessLog{}).IsEnabled() {
		t.Error("zero AccessLog: IsEnabled = false, want the default true")
	}
	if !(Admin{}).Enabled() {
		t.Error("zero Admin: Enabled = false, want the default true")
	}
}
