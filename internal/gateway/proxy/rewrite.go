package proxy

import (
	"io"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"time"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/forwarded"
	"golang.org/x/net/http/httpguts"
)

// rewrite builds the outbound request. ReverseProxy calls it after it has
// removed hop-by-hop headers, the headers the client listed in Connection and
// the inbound forwarding headers, so what is set here reaches the endpoint
// as written.
func (h *handler) rewrite(pr *httputil.ProxyRequest) {
	h.rewriteOut(attemptFrom(pr.In.Context()), pr.In, pr.Out)
}

// rewriteOut points out, a copy of in without hop-by-hop and inbound
// forwarding headers, at a's endpoint and writes the gateway-owned headers.
func (h *handler) rewriteOut(a *attempt, in, out *http.Request) {
	ex := a.ex

	path := ex.Path
	if path == "" {
		path = "/"
	}
	if h.t.Rewrite != nil {
		path = h.t.Rewrite(path, &ex.Params)
		ex.UpstreamPath = path
	}
	ep := a.ep.URL
	u := out.URL
	u.Scheme = scheme(ep.Scheme)
	u.Host = ep.Host
	u.User = ep.User
	u.Opaque = ""
	u.Path = joinPath(ep.Path, path)
	// An empty RawPath makes the transport encode Path, so the endpoint
	// receives exactly the canonical path, consistently escaped.
	u.RawPath = ""
	u.RawQuery = in.URL.RawQuery
	u.Fragment, u.RawFragment = "", ""
	out.Host = in.Host

	if !a.websocket {
		// Only WebSocket upgrades the route allows reach the endpoint; any
		// other Upgrade (h2c, unknown protocols) is dropped and the request
		// forwarded as a plain one.
		delete(out.Header, "Connection")
		delete(out.Header, "Upgrade")
	}
	h.setForwarding(a, in, out)
	setIdentity(out.Header, ex, a.identityStripped)
	h.setDeadline(a, in, out)
}

// methodOverrideHeaders are removed upstream unless the route honours them.
var methodOverrideHeaders = [...]string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// setIdentity removes every client-supplied identity header (and the method
// override headers, unless the route honours them), then writes the
// authenticated consumer's. Names are compared without case and with "_"
// taken as "-", the way some upstream frameworks read them, so no spelling
// of a gateway-owned header gets through.
func setIdentity(hdr http.Header, ex *exchange.Exchange, stripped bool) {
	if !stripped { // the direct path copied the header without them
		for name := range hdr {
			if gatewayOwned(name, ex) {
				delete(hdr, name)
			}
		}
	}
	if c := ex.Consumer; c != nil {
		for _, f := range c.Headers() {
			hdr[f.Name] = f.Value
		}
	}
}

// gatewayOwned reports a header only the gateway may send upstream: an
// identity header, or a method override the route does not honour.
func gatewayOwned(name string, ex *exchange.Exchange) bool {
	return exchange.IsIdentityHeader(name) || !ex.MethodOverride && isMethodOverride(name)
}

func isMethodOverride(name string) bool {
	if len(name) < len("X-Http-Method") || name[0]|0x20 != 'x' {
		return false
	}
	for _, h := range methodOverrideHeaders {
		if exchange.FoldedEqual(name, h) {
			return true
		}
	}
	return false
}

// scheme maps an endpoint scheme to the one the transport dials: h2c is
// cleartext HTTP/2, spoken by a transport configured for it over http.
func scheme(s string) string {
	if s == "h2c" {
		return "http"
	}
	return s
}

// joinPath prefixes the endpoint's base path, if any, to path.
func joinPath(base, path string) string {
	base = strings.TrimSuffix(base, "/")
	if base == "" {
		return path
	}
	return base + path
}

// setForwarding writes the gateway-owned request headers: the forwarding
// chain and the request id. Values from the inbound request are used only
// when the peer is trusted.
func (h *handler) setForwarding(a *attempt, in, out *http.Request) {
	peer, havePeer := forwarded.PeerAddr(in.RemoteAddr)
	trusted := havePeer && h.p.trusted.Contains(peer)
	hv := &a.hv
	hdr := out.Header
	if !trusted {
		// Other client-address headers that frameworks believe; only a
		// trusted proxy may send them.
		for _, name := range untrustedAddressHeaders {
			delete(hdr, name)
		}
	}

	var peerText string
	if havePeer {
		peerText = addrText(in.RemoteAddr, peer)
		if prior := in.Header["X-Forwarded-For"]; trusted && len(prior) > 0 {
			hv[0] = strings.Join(prior, ", ") + ", " + peerText
		} else {
			hv[0] = peerText
		}
		hdr["X-Forwarded-For"] = hv[0:1:1]
	}

	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	if v := in.Header["X-Forwarded-Proto"]; trusted && len(v) > 0 {
		hdr["X-Forwarded-Proto"] = v[:len(v):len(v)]
	} else {
		hv[1] = proto
		hdr["X-Forwarded-Proto"] = hv[1:2:2]
	}
	if v := in.Header["X-Forwarded-Host"]; trusted && len(v) > 0 {
		hdr["X-Forwarded-Host"] = v[:len(v):len(v)]
	} else if in.Host != "" {
		hv[2] = in.Host
		hdr["X-Forwarded-Host"] = hv[2:3:3]
	}

	elem := h.forwardedElem(peerText, havePeer && peer.Is6(), havePeer, in.Host, proto)
	if prior := in.Header["Forwarded"]; trusted && len(prior) > 0 {
		hv[3] = strings.Join(prior, ", ") + ", " + elem
	} else {
		hv[3] = elem
	}
	hdr["Forwarded"] = hv[3:4:4]

	hv[4] = a.ex.ID
	hdr[h.p.reqIDHeader] = hv[4:5:5]
}

// untrustedAddressHeaders are removed from requests of untrusted peers.
var untrustedAddressHeaders = [...]string{"X-Real-Ip", "True-Client-Ip", "X-Client-Ip", "Cf-Connecting-Ip", "X-Cluster-Client-Ip", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server", "X-Original-Forwarded-For"}

// addrText returns peer's text, reusing remoteAddr's (the peer address net/http
// reports) when it already is that text, so no address is formatted per
// request: an IPv4 "a.b.c.d:port" or bare "a.b.c.d", which netip parses only
// in canonical form. Anything else (IPv6, IPv4-mapped) is formatted.
func addrText(remoteAddr string, peer netip.Addr) string {
	if peer.Is4() && remoteAddr != "" && remoteAddr[0] != '[' {
		host := remoteAddr
		if i := strings.IndexByte(host, ':'); i >= 0 {
			host = host[:i]
		}
		if len(host) <= len("255.255.255.255") && host[0] >= '0' && host[0] <= '9' {
			return host
		}
	}
	return peer.String()
}

// forwardedElement formats this hop's RFC 7239 Forwarded element.
func forwardedElement(peer netip.Addr, havePeer bool, host, proto string) string {
	var text string
	if havePeer {
		text = peer.String()
	}
	return formatForwarded(text, havePeer && peer.Is6(), havePeer, host, proto)
}

// forwardedElem is formatForwarded through a one-entry cache: consecutive
// requests of a route mostly come from the same peer for the same host (one
// client, or the load balancer in front of the gateway).
func (h *handler) forwardedElem(peerText string, is6, havePeer bool, host, proto string) string {
	if c := h.lastForwarded.Load(); c != nil && c.peer == peerText && c.host == host && c.proto == proto && c.is6 == is6 && c.havePeer == havePeer {
		return c.value
	}
	c := &forwardedCache{peer: peerText, host: host, proto: proto, is6: is6, havePeer: havePeer}
	c.value = formatForwarded(peerText, is6, havePeer, host, proto)
	h.lastForwarded.Store(c)
	return c.value
}

type forwardedCache struct {
	peer, host, proto, value string
	is6, havePeer            bool
}

// formatForwarded formats a Forwarded element for the peer whose address
// text is peerText.
func formatForwarded(peerText string, is6, havePeer bool, host, proto string) string {
	var b strings.Builder
	b.Grow(64 + len(host))
	b.WriteString("for=")
	switch {
	case !havePeer:
		b.WriteString("unknown")
	case is6:
		b.WriteString(`"[`)
		b.WriteString(peerText)
		b.WriteString(`]"`)
	default:
		b.WriteString(peerText)
	}
	if host != "" {
		b.WriteString(";host=")
		writeValue(&b, host)
	}
	b.WriteString(";proto=")
	b.WriteString(proto)
	return b.String()
}

// writeValue writes v as an RFC 7239 token, or as a quoted string when it
// holds characters a token may not.
func writeValue(b *strings.Builder, v string) {
	token := true
	for i := 0; i < len(v); i++ {
		if !httpguts.IsTokenRune(rune(v[i])) {
			token = false
			break
		}
	}
	if token {
		b.WriteString(v)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
}

// modifyResponse runs when the endpoint's response headers arrive. It
// disarms the route timeout, records the upstream facts and puts the
// gateway's request id on the response.
func (h *handler) modifyResponse(res *http.Response) error {
	return h.onResponse(attemptFrom(res.Request.Context()), res)
}

// onResponse is modifyResponse for the attempt a.
func (h *handler) onResponse(a *attempt, res *http.Response) error {
	ex := a.ex
	if a.timer != nil && !a.timer.Stop() {
		// The timeout fired while the headers were on their way.
		return ErrUpstreamTimeout
	}
	now := time.Now()
	ex.UpstreamDuration = now.Sub(ex.UpstreamStart)
	a.status, a.latency = res.StatusCode, now.Sub(a.start)
	if h.retryStatus(a, res) {
		return a.retry
	}
	if res.StatusCode == http.StatusSwitchingProtocols && !a.websocket {
		return ErrUnexpectedUpgrade
	}
	// ReverseProxy adds the response headers to the writer's; keep exactly
	// one request id, the gateway's.
	res.Header[h.p.reqIDHeader] = a.hv[4:5:5]
	delete(a.w.Header(), h.p.reqIDHeader)

	if isGRPC(res.Header) {
		a.grpc = true
		if v := res.Header["Grpc-Status"]; len(v) > 0 {
			ex.GRPCStatus = v[0] // trailers-only response
		}
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		a.body = upstreamBody{a: a, rc: res.Body, res: res}
		res.Body = &a.body
	}
	return nil
}

func isGRPC(h http.Header) bool {
	ct := h["Content-Type"]
	return len(ct) > 0 && strings.HasPrefix(ct[0], "application/grpc")
}

// upstreamBody watches the response body as ReverseProxy copies it: it
// records a body that ends early and the grpc-status trailer.
type upstreamBody struct {
	a   *attempt
	rc  io.ReadCloser
	res *http.Response
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.a.bodyFailed(err)
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	err := b.rc.Close()
	// Trailers are complete once the body has been read to its end.
	if b.a.grpc {
		if v := b.res.Trailer["Grpc-Status"]; len(v) > 0 {
			b.a.ex.GRPCStatus = v[0]
		}
	}
	return err
}

// bodyFailed records a failed read of the response body. It is the
// endpoint's failure unless the client went away first (which cancels the
// upstream read too).
func (a *attempt) bodyFailed(err error) {
	if a.ex.Err != nil {
		return
	}
	a.ex.Err = err
	if a.in.Context().Err() == nil {
		a.failure = err
	}
}
