package gateway

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and localhost to dir and
// returns the file paths and a pool that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "portico test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestListenerProtocols(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "be")
	certFile, keyFile, roots := selfSigned(t, t.TempDir())
	g := startGatewayRaw(t, fmt.Sprintf(`
listeners:
  - name: plain
    address: "127.0.0.1:0"
  - name: secure
    address: "127.0.0.1:0"
    tls: {cert_file: %q, key_file: %q}
admin: {address: "off"}
services:
%s
routes:
  - name: echo
    match: {path: "/{rest...}"}
    service: echo
`, certFile, keyFile, serviceYAML("echo", be.URL)))

	tests := []struct {
		name, url string
		client    *http.Client
		proto     string
		xfProto   string
	}{
		{"http/1.1", "http://" + g.Addr("plain") + "/x", &http.Client{}, "HTTP/1.1", "http"},
		{"h2c prior knowledge", "http://" + g.Addr("plain") + "/x", h2cClient(), "HTTP/2.0", "http"},
		{"h2 over tls", "https://" + g.Addr("secure") + "/x", tlsClient(roots, true), "HTTP/2.0", "https"},
		{"http/1.1 over tls", "https://" + g.Addr("secure") + "/x", tlsClient(roots, false), "HTTP/1.1", "https"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.client.Timeout = 5 * time.Second
			resp, body := get(t, tc.client, tc.url)
			if resp.StatusCode != 200 || resp.Proto != tc.proto {
				t.Fatalf("status %d proto %s: %s", resp.StatusCode, resp.Proto, body)
			}
			if !strings.Contains(body, `"X-Forwarded-Proto": [`+"\n"+`      "`+tc.xfProto+`"`) {
				t.Fatalf("X-Forwarded-Proto is not %s: %s", tc.xfProto, body)
			}
		})
	}
}

func h2cClient() *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr}
}

func tlsClient(roots *x509.CertPool, h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, Protocols: new(http.Protocols)}
	tr.Protocols.SetHTTP1(!h2)
	tr.Protocols.SetHTTP2(h2)
	return &http.Client{Transport: tr}
}

// TestSlowClientsAreCut: a client that trickles its headers (slowloris) or
// never reads its response does not keep the connection.
func TestSlowClientsAreCut(t *testing.T) {
	t.Parallel()
	g := startGatewayRaw(t, `
listeners:
  - name: public
    address: "127.0.0.1:0"
    read_header_timeout: 300ms
    idle_timeout: 500ms
admin: {address: "off"}
routes:
  - name: hello
    match: {path: /hello}
    direct_response: {body: hi}
`)
	addr := g.Addr("public")

	t.Run("slow headers", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		_, _ = io.WriteString(conn, "GET /hello HTTP/1.1\r\nHost: x\r\n")
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			_, _ = io.Copy(io.Discard, conn)
		}()
		for i := 0; i < 30; i++ {
			select {
			case <-closed:
				if d := time.Since(start); d > 2*time.Second {
					t.Fatalf("closed after %s", d)
				}
				return
			case <-time.After(100 * time.Millisecond):
				_, _ = io.WriteString(conn, "X-Slow: 1\r\n")
			}
		}
		t.Fatal("a client trickling headers kept its connection for 3s")
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("idle connection not closed by the gateway: %v", err)
		}
	})

	t.Run("header too large", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(conn, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 70<<10))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d for 70 KiB of headers", resp.StatusCode)
		}
	})
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "be")
	g := startGatewayRaw(t, `
listeners:
  - name: public
    address: "127.0.0.1:0"
admin: {address: "127.0.0.1:0"}
shutdown: {delay: 300ms, drain_timeout: 5s}
services:
`+serviceYAML("echo", be.URL)+`
routes:
  - name: echo
    match: {path: "/{rest...}"}
    service: echo
`)
	c := &http.Client{Timeout: 10 * time.Second}
	get(t, c, g.base+"/warm") // leaves an idle keep-alive connection

	inflight := make(chan error, 1)
	go func() {
		resp, err := c.Get(g.base + "/delay/800ms")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		inflight <- err
	}()
	time.Sleep(100 * time.Millisecond)

	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- g.Shutdown(context.Background()) }()

	waitFor(t, time.Second, "readyz to report 503", func() bool {
		resp, err := c.Get(g.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if err := <-inflight; err != nil {
		t.Fatalf("in-flight request did not finish: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %s", d)
	}
	if _, err := net.DialTimeout("tcp", g.Addr("public"), time.Second); err == nil {
		t.Fatal("listener still accepts connections after shutdown")
	}
}

func TestShutdownCutsAfterDrainTimeout(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "be")
	g := startGatewayRaw(t, `
listeners:
  - name: public
    address: "127.0.0.1:0"
admin: {address: "off"}
shutdown: {drain_timeout: 300ms}
services:
`+serviceYAML("echo", be.URL)+`
routes:
  - name: echo
    match: {path: "/{rest...}"}
    service: echo
`)
	go func() {
		resp, err := http.Get(g.base + "/delay/10s")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	time.Sleep(150 * time.Millisecond)
	start := time.Now()
	_ = g.Shutdown(context.Background())
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown with a stuck request took %s; drain timeout is 300ms", d)
	}
}
