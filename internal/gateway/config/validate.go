package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// validator collects every problem of a decoded configuration.
type validator struct {
	cfg    *Config
	failed map[string]bool
	errs   ErrorList
}

// validate checks cfg before defaults are applied. Paths in failed (and
// below them) could not be decoded and are not checked again.
func validate(cfg *Config, failed map[string]bool) ErrorList {
	v := &validator{cfg: cfg, failed: failed}
	v.listeners()
	v.admin()
	v.logging()
	v.accessLog()
	v.trustedProxies()
	if h := cfg.RequestID.Header; h != "" && !httpguts.ValidHeaderFieldName(h) {
		v.errorf("request_id.header", "%q is not a valid header name", h)
	}
	services := v.services()
	v.routes(services)
	v.limits()
	v.auth()
	v.resilience()
	v.registry()
	return v.errs
}

func (v *validator) errorf(path, format string, args ...any) {
	for p := path; ; p = parentPath(p) {
		if v.failed[p] {
			return
		}
		if p == "" {
			break
		}
	}
	pos := v.cfg.src.lookup(path)
	v.errs = append(v.errs, &Error{File: v.cfg.File, Line: pos.line, Column: pos.col, Field: path, Msg: fmt.Sprintf(format, args...)})
}

// shown is value as an error message may print it: a value that came from
// the environment may be a secret, so it is shown as REDACTED.
func (v *validator) shown(path, value string) string {
	if v.cfg.src != nil && v.cfg.src.env[path] {
		return RedactedValue
	}
	return value
}

func (v *validator) line(path string) int { return v.cfg.src.lookup(path).line }

// name checks a required, unique listener, service or route name. seen maps
// names to the path of their first definition.
func (v *validator) name(kind, path, name string, seen map[string]string) {
	p := path + ".name"
	switch first, dup := seen[name]; {
	case name == "":
		v.errorf(p, "missing required field: every %s needs a name", kind)
	case !isName(name):
		v.errorf(p, "invalid %s name %q: use letters, digits, '-', '_' and '.', starting with a letter or digit", kind, name)
	case dup:
		v.errorf(p, "duplicate %s name %q; first defined at line %d", kind, name, v.line(first))
	default:
		seen[name] = p
	}
}

// boundAddr is an address some listener binds, for conflict checks.
type boundAddr struct{ host, port, desc string }

func (a boundAddr) conflicts(b boundAddr) bool {
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return a.port == b.port && a.port != "0" && (a.host == b.host || wild(a.host) || wild(b.host))
}

// address checks a host:port listen address and records it as bound.
func (v *validator) address(path, addr string, bound *[]boundAddr) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.errorf(path, "invalid address %q: write host:port, such as \":8080\" or \"127.0.0.1:8443\"", addr)
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || port != strconv.FormatUint(n, 10) {
		v.errorf(path, "invalid port %q in address %q: use a number from 0 to 65535", port, addr)
		return
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && (strings.Contains(host, "*") || checkHost(strings.ToLower(host)) != nil) {
			v.errorf(path, "invalid host %q in address %q", host, addr)
			return
		}
	}
	desc := parentPath(path)
	if l := v.line(path); l > 0 {
		desc += " (line " + strconv.Itoa(l) + ")"
	}
	b := boundAddr{strings.ToLower(host), port, desc}
	for _, o := range *bound {
		if b.conflicts(o) {
			v.errorf(path, "address %q conflicts with %s", addr, o.desc)
			return
		}
	}
	*bound = append(*bound, b)
}

func (v *validator) listeners() {
	seen := map[string]string{}
	var bound []boundAddr
	for i, l := range v.cfg.Listeners {
		p := joinIndex("listeners", i)
		v.name("listener", p, l.Name, seen)
		if l.Address == "" {
			v.errorf(p+".address", "missing required field: the host:port to listen on, such as \":8080\"")
		} else {
			v.address(p+".address", l.Address, &bound)
		}
		switch l.Protocol {
		case "https", "":
			if l.TLS == nil && l.Protocol == "https" {
				v.errorf(p+".tls", "missing required field: protocol \"https\" needs tls.cert_file and tls.key_file")
			}
		case "http", "h2c":
			if l.TLS != nil {
				v.errorf(p+".protocol", "tls is set but protocol is %q; use \"https\" or remove tls", l.Protocol)
			}
		default:
			v.errorf(p+".protocol", "invalid protocol %q: use \"http\", \"https\" or \"h2c\"%s", l.Protocol, suggest(l.Protocol, []string{"http", "https", "h2c"}))
		}
		if l.TLS != nil {
			v.listenerTLS(p+".tls", l.TLS)
		}
		if l.MaxHeaderBytes < 0 {
			v.errorf(p+".max_header_bytes", "must not be negative: header size always has a limit")
		}
		switch l.Server {
		case "", ServerPortico, ServerNetHTTP:
		default:
			v.errorf(p+".server", "invalid server %q: use %q or %q%s", l.Server, ServerPortico, ServerNetHTTP, suggest(l.Server, []string{ServerPortico, ServerNetHTTP}))
		}
	}
	if v.cfg.Admin.Address != "" && v.cfg.Admin.Address != "off" {
		if len(v.cfg.Listeners) == 0 {
			bound = append(bound, boundAddr{"", "8080", "the default listener \":8080\""})
		}
		v.address("admin.address", v.cfg.Admin.Address, &bound)
	}
}

func (v *validator) listenerTLS(p string, t *ListenerTLS) {
	if t.MinVersion != "" && t.MinVersion != "1.2" && t.MinVersion != "1.3" {
		v.errorf(p+".min_version", "invalid TLS version %q: use \"1.2\" or \"1.3\"", t.MinVersion)
	}
	if t.CertFile == "" {
		v.errorf(p+".cert_file", "missing required field: the PEM certificate chain for this listener")
	}
	if t.KeyFile == "" {
		v.errorf(p+".key_file", "missing required field: the PEM private key for this listener")
	}
	v.keyPair(p, t.CertFile, t.KeyFile)
}

// keyPair checks that a certificate and key exist and belong together.
func (v *validator) keyPair(p, certFile, keyFile string) {
	if certFile == "" || keyFile == "" {
		return
	}
	okC, okK := v.fileExists(p+".cert_file", certFile), v.fileExists(p+".key_file", keyFile)
	if !okC || !okK {
		return
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		v.errorf(p+".cert_file", "cannot load certificate %q with key %q: %v", certFile, keyFile, err)
	}
}

func (v *validator) fileExists(path, file string) bool {
	fi, err := os.Stat(file)
	switch {
	case err != nil:
		v.errorf(path, "cannot read %q: %v", file, unwrapPathError(err))
		return false
	case fi.IsDir():
		v.errorf(path, "%q is a directory, not a file", file)
		return false
	}
	return true
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (v *validator) admin() {
	if t := v.cfg.Admin.Token; t != "" && strings.ContainsAny(t, " \t\r\n") {
		v.errorf("admin.token", "the admin token must not contain white space")
	}
}

func (v *validator) logging() {
	if l := v.cfg.Logging.Level; l != "" && !slices.Contains([]string{"debug", "info", "warn", "error"}, l) {
		v.errorf("logging.level", "invalid level %q: use debug, info, warn or error%s", l, suggest(l, []string{"debug", "info", "warn", "error"}))
	}
	if f := v.cfg.Logging.Format; f != "" && f != "json" && f != "text" {
		v.errorf("logging.format", "invalid format %q: use json or text", f)
	}
}

func (v *validator) accessLog() {
	a := v.cfg.AccessLog
	switch a.Output {
	case "", "stdout", "stderr":
	default:
		if fi, err := os.Stat(a.Output); err == nil && fi.IsDir() {
			v.errorf("access_log.output", "%q is a directory; give a file path, \"stdout\" or \"stderr\"", a.Output)
		} else if _, err := os.Stat(filepath.Dir(a.Output)); err != nil {
			v.errorf("access_log.output", "directory of %q does not exist: %v", a.Output, unwrapPathError(err))
		}
	}
	for i, q := range a.RedactQuery {
		if q == "" {
			v.errorf(joinIndex("access_log.redact_query", i), "empty query parameter name")
		}
	}
}

func (v *validator) trustedProxies() {
	for i, s := range v.cfg.TrustedProxies {
		p := joinIndex("trusted_proxies", i)
		if strings.Contains(s, "/") {
			if _, err := netip.ParsePrefix(s); err != nil {
				v.errorf(p, "invalid CIDR %q: write an address and prefix length such as \"10.0.0.0/8\"", s)
			}
		} else if _, err := netip.ParseAddr(s); err != nil {
			v.errorf(p, "invalid address %q: write an IP address or a CIDR such as \"10.0.0.0/8\"", s)
		}
	}
}

// services checks the services and returns their names.
func (v *validator) services() map[string]string {
	seen := map[string]string{}
	for i, s := range v.cfg.Services {
		p := joinIndex("services", i)
		v.name("service", p, s.Name, seen)
		v.serviceSource(p, &v.cfg.Services[i])
		for j, e := range s.Endpoints {
			ep := joinIndex(p+".endpoints", j)
			v.endpointURL(ep+".url", e.URL)
			if e.Weight < 0 {
				v.errorf(ep+".weight", "weight %d must not be negative", e.Weight)
			}
			for k := range e.Metadata {
				if k == "" {
					v.errorf(ep+".metadata", "empty metadata key")
				}
			}
		}
		v.transport(p+".transport", s.Transport)
	}
	return seen
}

func (v *validator) endpointURL(p, raw string) {
	if raw == "" {
		v.errorf(p, "missing required field: scheme://host:port, such as \"http://10.0.0.5:8080\"")
		return
	}
	u, err := url.Parse(raw)
	raw = v.shown(p, raw)
	if err != nil {
		v.errorf(p, "invalid URL %q: %v", raw, unwrapURLError(err))
		return
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "h2c":
		v.errorf(p, "invalid URL %q: scheme must be http, https or h2c", raw)
	case u.Opaque != "" || u.Host == "":
		v.errorf(p, "invalid URL %q: write scheme://host:port", raw)
	case u.User != nil:
		v.errorf(p, "invalid URL %q: user information is not allowed; set credentials with route headers", raw)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		v.errorf(p, "invalid URL %q: a query or fragment is not allowed", raw)
	case u.Port() == "":
		v.errorf(p, "invalid URL %q: missing port; write %s://%s:PORT", raw, u.Scheme, u.Host)
	default:
		if n, err := strconv.ParseUint(u.Port(), 10, 16); err != nil || n == 0 {
			v.errorf(p, "invalid URL %q: port must be a number from 1 to 65535", raw)
		} else if h := u.Hostname(); checkHost(strings.ToLower(h)) != nil || strings.HasPrefix(h, "*") {
			v.errorf(p, "invalid URL %q: invalid host %q", raw, h)
		}
	}
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

func (v *validator) transport(p string, t Transport) {
	if t.MaxIdleConnsPerHost < 0 {
		v.errorf(p+".max_idle_conns_per_host", "must not be negative")
	}
	if t.MaxConnsPerHost < 0 {
		v.errorf(p+".max_conns_per_host", "must not be negative; 0 means no cap")
	}
	if t.TLS == nil {
		return
	}
	tp := p + ".tls"
	if t.TLS.CAFile != "" && v.fileExists(tp+".ca_file", t.TLS.CAFile) {
		if pem, err := os.ReadFile(t.TLS.CAFile); err != nil {
			v.errorf(tp+".ca_file", "cannot read %q: %v", t.TLS.CAFile, unwrapPathError(err))
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			v.errorf(tp+".ca_file", "%q holds no PEM certificates", t.TLS.CAFile)
		}
	}
	switch {
	case t.TLS.CertFile != "" && t.TLS.KeyFile == "":
		v.errorf(tp+".key_file", "missing required field: cert_file is set, so key_file is needed too")
	case t.TLS.CertFile == "" && t.TLS.KeyFile != "":
		v.errorf(tp+".cert_file", "missing required field: key_file is set, so cert_file is needed too")
	default:
		v.keyPair(tp, t.TLS.CertFile, t.TLS.KeyFile)
	}
}
