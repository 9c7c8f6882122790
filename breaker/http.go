package breaker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Middleware breaks per route: the command is "METHOD PATTERN" of the
// http.ServeMux route that serves the request ("GET /users/{id}", never the
// raw URL with its ids), found from the request's Pattern (when the
// middleware wraps a handler inside the mux) or from next when next is the
// *http.ServeMux; otherwise "METHOD (unrouted)". A response of 500 or more
// counts as a failure. An open circuit answers 503 with Retry-After (the
// sleep window), too many concurrent requests 429, and a request that ran
// past the Timeout without writing anything 504. The handler's context ends
// at the Timeout.
func (b *Breaker) Middleware(next http.Handler) http.Handler {
	mux, _ := next.(*http.ServeMux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cmd := route(r, mux)
		sw := &statusWriter{ResponseWriter: w}
		err := b.Do(r.Context(), cmd, func(ctx context.Context) error {
			next.ServeHTTP(sw, r.WithContext(ctx))
			if sw.code >= 500 {
				return &HTTPStatusError{Code: sw.code}
			}
			if err := ctx.Err(); err != nil && !sw.wrote {
				return err
			}
			return nil
		})
		if err == nil || sw.wrote {
			return
		}
		var re *RefusedError
		switch {
		case errors.As(err, &re) && errors.Is(err, ErrOpen):
			c, _ := b.command(cmd)
			w.Header().Set("Retry-After", strconv.Itoa(int((c.s.SleepWindow+time.Second-1)/time.Second)))
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		case errors.As(err, &re):
			w.Header().Set("Retry-After", "1")
			http.Error(w, err.Error(), http.StatusTooManyRequests)
		case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
			http.Error(w, "breaker: timed out", http.StatusGatewayTimeout)
		}
	})
}

func route(r *http.Request, mux *http.ServeMux) string {
	p := r.Pattern
	if p == "" && mux != nil {
		_, p = mux.Handler(r)
	}
	if p == "" {
		return r.Method + " (unrouted)"
	}
	if i := strings.IndexByte(p, ' '); i >= 0 { // "GET /x" or "GET host/x"
		return p
	}
	return r.Method + " " + p
}

// statusWriter records the status a handler wrote, and keeps Flusher and
// Hijacker (and, through Unwrap, http.ResponseController) working.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.code, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if !w.wrote {
			w.code, w.wrote = http.StatusOK, true
		}
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("breaker: the underlying ResponseWriter (%T) cannot be hijacked", w.ResponseWriter)
	}
	w.wrote = true // the handler owns the connection; the call counts as answered
	return h.Hijack()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
