package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/portico-dev/portico/internal/gateway/exchange"
	"github.com/portico-dev/portico/internal/gateway/upstream"
	"github.com/portico-dev/portico/internal/problem"
)

// StatusClientClosedRequest is recorded in the Exchange when the client went
// away before the response started. Nothing is sent to the client.
const StatusClientClosedRequest = 499

// errorHandler is ReverseProxy's ErrorHandler: the attempt failed before a
// response could be relayed.
func (h *handler) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	h.attemptFailed(attemptFrom(r.Context()), w, err)
}

// attemptFailed handles the failure of attempt a: it is retried, or the
// client is answered with an error.
func (h *handler) attemptFailed(a *attempt, w http.ResponseWriter, err error) {
	if a.ex.UpstreamDuration == 0 {
		a.ex.UpstreamDuration = time.Since(a.ex.UpstreamStart)
	}
	if a.retry != nil {
		// ModifyResponse refused a retryable status; the loop retries.
		return
	}
	if h.mayRetry(a, err) {
		a.failure = err
		h.logRetry(a, err)
		return
	}
	h.fail(w, a.in, a.ex, a, err)
}

// fail answers a request the proxy could not relay. a is nil when no
// endpoint was tried.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, ex *exchange.Exchange, a *attempt, err error) {
	status, detail := h.classify(r, a, err)
	ex.Err = err
	ex.Status = status
	if a != nil && (status == http.StatusBadGateway || status == http.StatusGatewayTimeout) {
		a.failure = err
	}
	h.logFailure(r.Context(), ex, status, err)
	if status == StatusClientClosedRequest || (a != nil && a.hijacked) {
		// Nobody to answer, or the connection is no longer HTTP.
		return
	}
	w.Header()[h.p.reqIDHeader] = []string{ex.ID}
	problem.Write(w, problem.Details{Status: status, Detail: detail, RequestID: ex.ID})
}

// classify maps an error to the status the client gets and a detail that is
// safe to show it.
func (h *handler) classify(r *http.Request, a *attempt, err error) (int, string) {
	var maxBytes *http.MaxBytesError
	var status *StatusError
	switch {
	case errors.Is(err, upstream.ErrNoEndpoint):
		return http.StatusServiceUnavailable, "no endpoint of the service is available"
	case errors.Is(err, upstream.ErrOverloaded):
		return http.StatusServiceUnavailable, "the service has too many requests in flight"
	case errors.As(err, &status):
		if status.GRPCStatus != "" {
			return http.StatusServiceUnavailable, "the service is unavailable"
		}
		return status.Code, "the service answered " + strconv.Itoa(status.Code)
	case errors.Is(err, ErrRequestBody) && r.Context().Err() == nil:
		return http.StatusBadRequest, "the request body could not be read"
	case errors.Is(err, ErrShuttingDown):
		return http.StatusServiceUnavailable, "the gateway is shutting down"
	case errors.Is(err, ErrUpgradeRefused):
		return http.StatusBadRequest, err.Error()
	case errors.As(err, &maxBytes):
		return http.StatusRequestEntityTooLarge, "the request body is larger than " + strconv.FormatInt(maxBytes.Limit, 10) + " bytes"
	case errors.Is(err, ErrUpstreamTimeout) || (a != nil && context.Cause(a) == ErrUpstreamTimeout):
		return http.StatusGatewayTimeout, "the service did not answer in time"
	case errors.Is(r.Context().Err(), context.Canceled):
		return StatusClientClosedRequest, ""
	case isTimeout(err) || r.Context().Err() != nil:
		return http.StatusGatewayTimeout, "the service did not answer in time"
	case errors.Is(err, ErrUnexpectedUpgrade):
		return http.StatusBadGateway, "the service switched protocols unexpectedly"
	default:
		return http.StatusBadGateway, "the service could not be reached or sent an invalid response"
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// logFailure logs a failed attempt. The error text logged never includes the
// upstream URL, whose query may carry credentials.
func (h *handler) logFailure(ctx context.Context, ex *exchange.Exchange, status int, err error) {
	level := slog.LevelWarn
	switch status {
	case StatusClientClosedRequest, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		level = slog.LevelDebug
	}
	if !h.p.log.Enabled(ctx, level) {
		return
	}
	h.p.log.LogAttrs(ctx, level, "upstream request failed",
		slog.String("request_id", ex.ID),
		slog.String("service", h.service),
		slog.String("endpoint", ex.Endpoint),
		slog.Int("status", status),
		slog.String("error", safeError(err)),
	)
}

// safeError returns err's text without the request URL a *url.Error adds.
func safeError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}
