package proxy

import (
	"io"
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"

	"github.com/portico-dev/portico/internal/gateway/exchange"
)

// The direct path relays a request that Portico's HTTP/1.1 client sends
// (a plain-http endpoint, no upgrade, no hedging, a body of known length up
// to maxNativeRequestBody) without httputil.ReverseProxy. It does what
// ReverseProxy does for such a request — the same hop-by-hop removal, the
// same Rewrite (rewriteOut), ModifyResponse (onResponse) and ErrorHandler
// (attemptFailed) logic, the same header copy, flushing, trailers and abort
// on a broken body — but:
//
//   - the outbound request and its header map are pooled, and the header
//     map shares the inbound values instead of cloning them (ReverseProxy
//     copies the request twice and its headers once);
//   - the route's timeout is the upstream connection's deadline rather than
//     a cancelable context and a timer per attempt;
//   - there is no client trace context: interim responses reach the client
//     through sendOptions.
//
// The proxy's conformance tests run against both paths: every test that
// uses the native client goes this way, and with the net/http client the
// same tests go through ReverseProxy.

// directReq is the pooled memory of one direct attempt.
type directReq struct {
	out    http.Request
	url    url.URL
	hdr    http.Header
	res    http.Response
	resHdr http.Header
	body   h1Body
}

var directReqs = sync.Pool{New: func() any {
	return &directReq{hdr: make(http.Header, 16), resHdr: make(http.Header, 16)}
}}

func (d *directReq) release() {
	clear(d.hdr)
	clear(d.resHdr)
	d.out, d.url, d.res, d.body = http.Request{}, url.URL{}, http.Response{}, h1Body{}
	directReqs.Put(d)
}

// noUserAgent makes the client send no User-Agent when the inbound request
// had none, as ReverseProxy does.
var noUserAgent = []string{""}

// teTrailers is the only TE value forwarded: the client accepts trailers.
var teTrailers = []string{"trailers"}

// directClient returns the HTTP/1.1 client that will send a's request
// itself, or nil when the request needs ReverseProxy (upgrades, hedging,
// other schemes, Expect, trailers, bodies of unknown or large size).
func (h *handler) directClient(a *attempt, r *http.Request) *h1Client {
	if a.websocket || h.hedger != nil || a.ep.URL.Scheme != "http" || a.ep.URL.Host == "" {
		return nil
	}
	c, ok := h.t.Pool.Transport().(*h1Client)
	if !ok || len(r.Trailer) > 0 || len(r.TransferEncoding) > 0 {
		return nil
	}
	if _, ok := r.Header["Expect"]; ok {
		return nil
	}
	if r.ContentLength < 0 || r.ContentLength > maxNativeRequestBody {
		return nil
	}
	if r.ContentLength > 0 && (r.Body == nil || r.Body == http.NoBody) {
		return nil
	}
	return c
}

// serveDirect sends attempt a through client and relays the response to w.
// It reports failures the way ReverseProxy's ErrorHandler would.
func (h *handler) serveDirect(a *attempt, w http.ResponseWriter, r *http.Request, client *h1Client) {
	d := directReqs.Get().(*directReq)
	defer d.release()
	out := &d.out
	d.url = *r.URL // rewriteOut sets what differs upstream, as for a clone
	*out = http.Request{
		Method: r.Method, URL: &d.url, Header: d.hdr, Host: r.Host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		RemoteAddr: r.RemoteAddr, TLS: r.TLS, ContentLength: r.ContentLength,
	}
	if r.ContentLength > 0 {
		out.Body = r.Body
		if b := a.c.requestBody(); b != nil {
			out.Body = b
		}
	}
	copyOutboundHeader(out.Header, r.Header, a.ex)
	a.identityStripped = true
	h.rewriteOut(a, r, out)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = noUserAgent
	}

	res, err := client.do(r.Context(), out, sendOptions{
		deadline: a.tryDeadline, watch: true, now: a.start, interim: w,
		res: &d.res, hdr: d.resHdr, body: &d.body,
	})
	if err != nil {
		h.attemptFailed(a, w, err)
		return
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		removeHopByHop(res.Header)
	}
	if err := h.onResponse(a, res); err != nil {
		_ = res.Body.Close()
		h.attemptFailed(a, w, err)
		return
	}
	dst := w.Header()
	for k, vv := range res.Header {
		addValues(dst, k, vv)
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		addValues(dst, "Trailer", []string{strings.Join(keys, ", ")})
	}
	w.WriteHeader(res.StatusCode)

	buf := h.p.buffers.Get()
	err = copyBody(w, res.Body, buf, res.ContentLength == -1 || isEventStream(res.Header))
	h.p.buffers.Put(buf)
	if err != nil {
		_ = res.Body.Close()
		if r.Context().Value(http.ServerContextKey) != nil {
			// Abort the client's response, as ReverseProxy does: net/http
			// closes the connection, so the client sees a truncated body.
			panic(http.ErrAbortHandler)
		}
		return
	}
	_ = res.Body.Close() // fills res.Trailer
	if len(res.Trailer) > 0 {
		// A trailer forces a chunked response, even for a short body.
		flush(w)
	}
	if len(res.Trailer) == announced {
		for k, vv := range res.Trailer {
			addValues(dst, k, vv)
		}
		return
	}
	for k, vv := range res.Trailer {
		addValues(dst, http.TrailerPrefix+k, vv)
	}
}

// addValues appends vv to h's values of k without writing into a slice h
// may share with another header.
func addValues(h http.Header, k string, vv []string) {
	if prev, ok := h[k]; ok {
		h[k] = append(prev[:len(prev):len(prev)], vv...)
		return
	}
	h[k] = vv
}

// copyOutboundHeader copies the inbound header src into the outbound dst,
// sharing the value slices, without the hop-by-hop headers (those listed
// in Connection too) and the inbound forwarding headers, exactly as
// ReverseProxy prepares a request for Rewrite, and without the headers only
// the gateway may send (setIdentity's). The gateway never modifies a value
// slice of dst in place, so sharing is safe.
func copyOutboundHeader(dst, src http.Header, ex *exchange.Exchange) {
	for k, vv := range src {
		switch k {
		case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
			"Te", "Trailer", "Transfer-Encoding", "Upgrade",
			"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
			continue
		}
		if gatewayOwned(k, ex) {
			continue
		}
		dst[k] = vv
	}
	for _, f := range src["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				delete(dst, http.CanonicalHeaderKey(sf))
			}
		}
	}
	if httpguts.HeaderValuesContainsToken(src["Te"], "trailers") {
		dst["Te"] = teTrailers
	}
}

// hopHeaders are removed from responses, as ReverseProxy does.
var hopHeaders = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopByHop removes the hop-by-hop headers of a response, and those
// its Connection header lists.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				delete(h, http.CanonicalHeaderKey(sf))
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// isEventStream reports a text/event-stream response, whose events must
// reach the client as they arrive.
func isEventStream(h http.Header) bool {
	ct := h["Content-Type"]
	if len(ct) == 0 {
		return false
	}
	v := ct[0]
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	return strings.EqualFold(strings.TrimSpace(v), "text/event-stream")
}

// copyBody copies src to w through buf, flushing after each write when
// flushEach is set (streams and bodies of unknown length). The error is the
// first failure to read src or to write w.
func copyBody(w http.ResponseWriter, src io.Reader, buf []byte, flushEach bool) error {
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			if werr != nil {
				return werr
			}
			if nw != nr {
				return io.ErrShortWrite
			}
			if flushEach {
				flush(w)
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return nil
			}
			return rerr
		}
	}
}

func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(w).Flush()
}

// forwardInterim relays an interim (1xx) response to the client, keeping
// the headers the gateway has already set for the final one.
func forwardInterim(w http.ResponseWriter, code int, hdr textproto.MIMEHeader) {
	h := w.Header()
	saved := maps.Clone(h)
	for k, vv := range hdr {
		addValues(h, k, vv)
	}
	w.WriteHeader(code)
	clear(h)
	maps.Copy(h, saved)
}
