package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// Transport defaults, used when a TransportOptions field is zero.
const (
	DefaultDialTimeout         = 5 * time.Second
	DefaultKeepAlive           = 30 * time.Second
	DefaultTLSHandshakeTimeout = 10 * time.Second
	DefaultIdleConnTimeout     = 90 * time.Second
	DefaultMaxIdleConnsPerHost = 256
)

// TransportOptions tunes the transport of one service.
type TransportOptions struct {
	// H2C selects cleartext HTTP/2 with prior knowledge for http endpoints
	// (the "h2c" endpoint scheme); https endpoints of the same service then
	// speak HTTP/2 over TLS. If false, http endpoints speak HTTP/1.1 and
	// https endpoints HTTP/2 or HTTP/1.1 as negotiated by ALPN.
	H2C bool
	// DialTimeout bounds establishing a TCP connection. Default 5s.
	DialTimeout time.Duration
	// KeepAlive is the TCP keep-alive probe interval, and the idle time
	// after which an HTTP/2 connection is checked with a ping. Default 30s;
	// negative disables both.
	KeepAlive time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake. Default 10s.
	TLSHandshakeTimeout time.Duration
	// IdleConnTimeout closes pooled idle connections after this long.
	// Default 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost is the number of idle keep-alive connections kept
	// per endpoint. Default 256.
	MaxIdleConnsPerHost int
	// MaxConnsPerHost caps the connections per endpoint, idle or not;
	// requests beyond it wait. Default 0, no cap.
	MaxConnsPerHost int
	// CAFile is a PEM file of CAs that verify endpoint certificates. If
	// empty, the system roots are used.
	CAFile string
	// ServerName is the name verified in endpoint certificates and sent as
	// SNI. If empty, the endpoint's host is used.
	ServerName string
	// CertFile and KeyFile are a PEM client certificate and key presented to
	// endpoints (mutual TLS). Both or neither must be set.
	CertFile, KeyFile string
	// InsecureSkipVerify disables verification of endpoint certificates.
	// For development only.
	InsecureSkipVerify bool
	// Client chooses what sends HTTP/1.1 requests to plain-http endpoints:
	// ClientNative (Portico's own client, the default when empty) or
	// ClientStd (net/http's Transport). https and h2c endpoints, upgrades,
	// and requests the native client does not cover always use net/http.
	Client string
}

// Values of TransportOptions.Client.
const (
	// ClientNative is Portico's HTTP/1.1 client: each request is written
	// and its response read on the calling goroutine, over a pool of
	// keep-alive connections per endpoint.
	ClientNative = "native"
	// ClientStd is net/http's Transport for every request.
	ClientStd = "http.Transport"
)

// NewTransport builds the transport of one service from opts. The gateway
// calls it once per service; the transport pools connections to all of the
// service's endpoints.
//
// Plain-http endpoints are sent HTTP/1.1 by Portico's own client unless
// opts.Client is ClientStd (see h1Client); everything else goes through
// net/http's Transport.
//
// The transport never uses an environment proxy and never compresses or
// decompresses bodies: the client's Accept-Encoding and the endpoint's
// Content-Encoding pass through unchanged.
func NewTransport(opts TransportOptions) (http.RoundTripper, error) {
	if opts.DialTimeout < 0 || opts.TLSHandshakeTimeout < 0 || opts.IdleConnTimeout < 0 {
		return nil, errors.New("transport: timeouts must not be negative")
	}
	if opts.MaxIdleConnsPerHost < 0 || opts.MaxConnsPerHost < 0 {
		return nil, errors.New("transport: connection limits must not be negative")
	}
	if opts.Client != "" && opts.Client != ClientNative && opts.Client != ClientStd {
		return nil, fmt.Errorf("transport: unknown client %q", opts.Client)
	}
	tlsConf, err := opts.tlsConfig()
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{
		Timeout:   orDefault(opts.DialTimeout, DefaultDialTimeout),
		KeepAlive: orDefault(opts.KeepAlive, DefaultKeepAlive),
	}
	var protocols http.Protocols
	if opts.H2C {
		protocols.SetUnencryptedHTTP2(true)
		protocols.SetHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
		protocols.SetHTTP2(true)
	}
	h2 := &http.HTTP2Config{}
	if ka := dialer.KeepAlive; ka > 0 {
		h2.SendPingTimeout = ka
	}
	idle := DefaultMaxIdleConnsPerHost
	if opts.MaxIdleConnsPerHost > 0 {
		idle = opts.MaxIdleConnsPerHost
	}
	std := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   orDefault(opts.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout),
		IdleConnTimeout:       orDefault(opts.IdleConnTimeout, DefaultIdleConnTimeout),
		MaxIdleConnsPerHost:   idle,
		MaxConnsPerHost:       opts.MaxConnsPerHost,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
		Protocols:             &protocols,
		HTTP2:                 h2,
	}
	if opts.H2C || opts.Client == ClientStd {
		return std, nil
	}
	return newH1Client(std, dialer), nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (o *TransportOptions) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.ServerName,
		InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // explicit, documented development option
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("transport: read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("transport: CA file %q holds no PEM certificate", o.CAFile)
		}
		c.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("transport: client certificate needs both cert_file and key_file")
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("transport: load client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
