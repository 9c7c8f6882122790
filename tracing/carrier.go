package tracing

import (
	"strings"

	"github.com/opentracing/opentracing-go"
)

// Trace headers cross three kinds of carrier: gRPC metadata, HTTP headers
// and the plain API's pairs. Every one is written and read in the tracer's
// HTTPHeaders format, in which Jaeger URL-encodes baggage values ("José"
// travels as "Jos%C3%A9", "a b/c" as "a+b%2Fc") and decodes them on the
// other side, so that any value makes the round trip exactly. What a
// carrier still cannot carry (a baggage key with a space, a value with
// control characters from a tracer that does not encode) is dropped and
// reported through Hooks.OnDropped: observability never fails a call. The
// rule is gRPC metadata's, the strictest carrier's (lowercase-able token
// keys, printable ASCII values), so a pair Inject writes fits every one.
const format = opentracing.HTTPHeaders

// writer is the carrier a tracer injects into.
type writer struct {
	t   *Tracing
	ok  func(k, v string) bool
	set func(k, v string)
}

func (w writer) Set(k, v string) {
	if !w.ok(k, v) {
		if h := w.t.hooks.OnDropped; h != nil {
			h(k)
		}
		return
	}
	w.set(k, v)
}

// metadataSafe reports whether gRPC can carry the pair as a text header.
func metadataSafe(k, v string) bool {
	if k == "" || strings.HasSuffix(strings.ToLower(k), "-bin") {
		return false // binary headers take base64 values; tracers write text
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}
