package proxy

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNewTransportDefaultsAndProtocols(t *testing.T) {
	t.Parallel()
	rt, err := NewTransport(TransportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rt.(*h1Client); !ok {
		t.Errorf("default transport = %T, want the native HTTP/1.1 client", rt)
	}
	tr := stdOf(rt)
	if tr.Proxy != nil || !tr.DisableCompression || tr.ForceAttemptHTTP2 {
		t.Error("transport must not use env proxies, must not compress, must not force HTTP/2")
	}
	if tr.MaxIdleConnsPerHost != DefaultMaxIdleConnsPerHost || tr.IdleConnTimeout != DefaultIdleConnTimeout || tr.TLSHandshakeTimeout != DefaultTLSHandshakeTimeout {
		t.Errorf("defaults not applied: %d %v %v", tr.MaxIdleConnsPerHost, tr.IdleConnTimeout, tr.TLSHandshakeTimeout)
	}
	if p := tr.Protocols; !p.HTTP1() || !p.HTTP2() || p.UnencryptedHTTP2() {
		t.Errorf("http/https protocols = %v", p)
	}
	rt, err = NewTransport(TransportOptions{H2C: true, MaxConnsPerHost: 8, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rt.(*http.Transport); !ok {
		t.Errorf("h2c transport = %T, want *http.Transport", rt)
	}
	tr = stdOf(rt)
	if p := tr.Protocols; p.HTTP1() || !p.UnencryptedHTTP2() {
		t.Errorf("h2c protocols = %v", p)
	}
	if tr.MaxConnsPerHost != 8 || tr.MaxIdleConnsPerHost != 4 || tr.IdleConnTimeout != time.Second {
		t.Error("options not applied")
	}
}

func TestNewTransportRejects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]TransportOptions{
		"negative timeout":   {DialTimeout: -1},
		"negative limit":     {MaxConnsPerHost: -1},
		"missing CA file":    {CAFile: filepath.Join(dir, "nope.pem")},
		"CA file not PEM":    {CAFile: notPEM},
		"cert without key":   {CertFile: notPEM},
		"unloadable keypair": {CertFile: notPEM, KeyFile: notPEM},
		"unknown client":     {Client: "fasthttp"},
	} {
		if _, err := NewTransport(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestH2CEndpointSpeaksHTTP2(t *testing.T) {
	t.Parallel()
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Got-Proto", r.Proto)
	}))
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	backend.Config.Protocols = &p
	backend.Start()
	t.Cleanup(backend.Close)
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{H2C: true}, "h2c://"+backend.Listener.Addr().String())}, nil)
	res, _ := get(t, testClient(t), g.URL+"/", nil)
	if got := res.Header.Get("Got-Proto"); got != "HTTP/2.0" {
		t.Fatalf("endpoint saw %q (status %d)", got, res.StatusCode)
	}
}

func TestHTTPSEndpointWithCAFile(t *testing.T) {
	t.Parallel()
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Got-Proto", r.Proto)
		w.Header().Set("Got-Client-Certs", strconv.Itoa(len(r.TLS.PeerCertificates)))
	}))
	backend.EnableHTTP2 = true
	backend.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	backend.StartTLS()
	t.Cleanup(backend.Close)

	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	cert := backend.Certificate()
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testClient(t)

	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{CAFile: caFile, ServerName: "example.com"}, backend.URL)}, nil)
	res, body := get(t, c, g.URL+"/", nil)
	if res.StatusCode != 200 || res.Header.Get("Got-Proto") != "HTTP/2.0" {
		t.Fatalf("with CA file: %d %q %s", res.StatusCode, res.Header.Get("Got-Proto"), body)
	}

	g = startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{}, backend.URL)}, nil)
	if res, body := get(t, c, g.URL+"/", nil); res.StatusCode != http.StatusBadGateway {
		t.Fatalf("unknown CA: %d %s", res.StatusCode, body)
	}

	g = startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{InsecureSkipVerify: true}, backend.URL)}, nil)
	if res, body := get(t, c, g.URL+"/", nil); res.StatusCode != 200 {
		t.Fatalf("insecure: %d %s", res.StatusCode, body)
	}
}

func TestClientCertificate(t *testing.T) {
	t.Parallel()
	// The httptest certificate doubles as the client certificate.
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeTestKeyPair(t, certFile, keyFile)
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Got-Client-Certs", strconv.Itoa(len(r.TLS.PeerCertificates)))
	}))
	backend.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	backend.StartTLS()
	t.Cleanup(backend.Close)
	g := startGateway(t, newTestProxy(t), Target{Pool: newPool(t, TransportOptions{InsecureSkipVerify: true, CertFile: certFile, KeyFile: keyFile}, backend.URL)}, nil)
	res, body := get(t, testClient(t), g.URL+"/", nil)
	if res.StatusCode != 200 || res.Header.Get("Got-Client-Certs") != "1" {
		t.Fatalf("%d %q %s", res.StatusCode, res.Header.Get("Got-Client-Certs"), body)
	}
}

// writeTestKeyPair writes net/http/httptest's built-in certificate and key.
func writeTestKeyPair(t *testing.T, certFile, keyFile string) {
	t.Helper()
	s := httptest.NewUnstartedServer(nil)
	s.StartTLS()
	cert := s.TLS.Certificates[0]
	s.Close()
	var chain strings.Builder
	for _, der := range cert.Certificate {
		_ = pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	if err := os.WriteFile(certFile, []byte(chain.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	keyDER, err := marshalKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}
