package shed

import (
	"net/http"
	"strconv"
)

// Middleware refuses a request that waited too long in a standing queue
// with 429 Too Many Requests and a Retry-After header (whole seconds: 1).
// net/http does not say when a request arrived: the wait is the Go
// scheduler's (see the package doc), unless a handler before this one
// stamped the request's context with Arrived.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, err := l.Acquire(r.Context())
		if err != nil {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(l.pushback().Seconds()+0.999))))
			http.Error(w, "server overloaded, request refused", http.StatusTooManyRequests)
			return
		}
		defer t.Release()
		next.ServeHTTP(w, r)
	})
}
