package tracing

import (
	"net/http"

	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"

	"github.com/rpcguard/rpcguard/internal/httpx"
)

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
		tr, on := t.tracerFor()
		if !on {
			next.ServeHTTP(w, r)
			return
		}
		parent := t.extract(tr, func(yield func(k, v string) bool) {
			for k, vs := range r.Header {
				for _, v := range vs {
					if !yield(k, v) {
						return
					}
				}
			}
		})
		span := tr.StartSpan("HTTP "+httpx.Method(r.Method), ext.RPCServerOption(parent), opentracing.Tag{Key: string(ext.Component), Value: componentHTTP})
		ext.HTTPMethod.Set(span, r.Method)
		ext.HTTPUrl.Set(span, r.URL.Path)
		ext.PeerAddress.Set(span, r.RemoteAddr)
		sw := &httpx.StatusWriter{ResponseWriter: w}
		ctx, box := httpx.WithRouteBox(opentracing.ContextWithSpan(r.Context(), span))
		r2 := r.WithContext(ctx)
		next.ServeHTTP(sw, r2)
		route := *box // found by a middleware inside that wraps the mux
		if route == "" && (mux != nil || r2.Pattern != "") {
			route = httpx.Route(r2, mux)
		}
		if route != "" {
			span.SetOperationName("HTTP " + route)
		}
		finishHTTP(span, sw.Code, nil)
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
		tr, on := t.tracerFor()
		if !on {
			return next.RoundTrip(r)
		}
		span := startClient(r.Context(), tr, "HTTP "+httpx.Method(r.Method), componentHTTP)
		ext.HTTPMethod.Set(span, r.Method)
		ext.HTTPUrl.Set(span, r.URL.Scheme+"://"+r.URL.Host+r.URL.Path)
		ext.PeerAddress.Set(span, r.URL.Host)
		r = r.Clone(r.Context())
		_ = tr.Inject(span.Context(), format, t.headerWriter(r.Header))
		resp, err := next.RoundTrip(r)
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		finishHTTP(span, code, err)
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func finishHTTP(span opentracing.Span, code int, err error) {
	if code != 0 {
		ext.HTTPStatusCode.Set(span, uint16(code))
	}
	if err != nil || code >= 500 {
		ext.Error.Set(span, true)
	}
	if err != nil {
		tagReasons(span, err)
		span.LogKV("event", "error", "message", err.Error())
	}
	span.Finish()
}
