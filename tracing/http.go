package tracing

import (
	"fmt"
	"net/http"

	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/internal/httpx"
	"github.com/rpcguard/rpcguard/outcome"
)

// The HTTP carrier: spans start and finish through the engine (engine.go);
// this file moves headers and adds the HTTP tags. Like every span, an HTTP
// span's grpc.code is the gRPC meaning of its outcome (httpx's table: 503
// is Unavailable, ...), beside its http.status_code.

const componentHTTP = "net/http"

// Middleware makes a server span per request, child of the caller's span
// when the request carries one within the bound. It is named "HTTP METHOD
// PATTERN" of the http.ServeMux route (never the raw URL): the mux it wraps,
// or the one an inner rpcguard middleware (the breaker's) wraps; a method
// outside the nine standard ones is named "OTHER" (remote clients must not
// make span names at will). Tagged with the method, path, status and peer; a
// status of 500 or more marks it an error.
func (t *Tracing) Middleware(next http.Handler) http.Handler {
	mux, _ := next.(*http.ServeMux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !t.Enabled() {
			next.ServeHTTP(w, r)
			return
		}
		ctx, finish := t.StartServer(r.Context(), "HTTP "+httpx.Method(r.Method), SpanInfo{Component: componentHTTP, Parent: headerPairs(r.Header)})
		span := opentracing.SpanFromContext(ctx)
		ext.HTTPMethod.Set(span, r.Method)
		ext.HTTPUrl.Set(span, r.URL.Path)
		ext.PeerAddress.Set(span, r.RemoteAddr)
		sw := &httpx.StatusWriter{ResponseWriter: w}
		ctx, box := httpx.WithRouteBox(ctx)
		r2 := r.WithContext(ctx)
		next.ServeHTTP(sw, r2)
		route := *box // found by a middleware inside that wraps the mux
		if route == "" && (mux != nil || r2.Pattern != "") {
			route = httpx.Route(r2, mux)
		}
		if route != "" {
			span.SetOperationName("HTTP " + route)
		}
		code := sw.Code
		if !sw.Wrote {
			code = http.StatusOK // what net/http answers for a handler that wrote nothing
		}
		finish(statusErr(span, code))
	})
}

// RoundTripper makes a client span per request, child of the span in the
// request's context, and injects it into a copy of the request's headers.
// next nil means http.DefaultTransport.
func (t *Tracing) RoundTripper(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		if !t.Enabled() {
			return next.RoundTrip(r)
		}
		ctx, finish := t.StartCall(r.Context(), "HTTP "+httpx.Method(r.Method), SpanInfo{Component: componentHTTP})
		span := opentracing.SpanFromContext(ctx)
		ext.HTTPMethod.Set(span, r.Method)
		ext.HTTPUrl.Set(span, r.URL.Scheme+"://"+r.URL.Host+r.URL.Path)
		ext.PeerAddress.Set(span, r.URL.Host)
		r = r.Clone(r.Context())
		t.Inject(ctx, r.Header.Set)
		resp, err := next.RoundTrip(r)
		if err != nil {
			finish(err)
			return resp, err
		}
		finish(statusErr(span, resp.StatusCode))
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// headerPairs yields the pairs of h.
func headerPairs(h http.Header) func(yield func(k, v string) bool) {
	return func(yield func(k, v string) bool) {
		for k, vs := range h {
			for _, v := range vs {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// statusErr tags span with an HTTP status and returns the error the span
// finishes with: nil below 500, else the status's gRPC meaning.
func statusErr(span opentracing.Span, code int) error {
	ext.HTTPStatusCode.Set(span, uint16(code))
	if code < 500 {
		return nil
	}
	return status.Error(outcome.FromHTTP(code), fmt.Sprintf("HTTP %d %s", code, http.StatusText(code)))
}
