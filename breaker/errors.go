package breaker

import (
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"

	"github.com/rpcguard/rpcguard/internal/grpcerr"
)

// Errors of calls the breaker refused. errors.Is finds them; status.Code
// reports Unavailable for an open circuit and ResourceExhausted for too many
// concurrent calls. A refused call never ran: it is safe to retry elsewhere
// or later.
var (
	ErrOpen     error = &grpcerr.Sentinel{Msg: "breaker: circuit open", Code: codes.Unavailable}
	ErrRejected error = &grpcerr.Sentinel{Msg: "breaker: too many concurrent calls", Code: codes.ResourceExhausted}
)

// RefusedError is the error of a refused call: Err is ErrOpen or
// ErrRejected, Command the command (without the namespace).
type RefusedError struct {
	Command string
	Err     error
}

func (e *RefusedError) Error() string { return fmt.Sprintf("%v (%s)", e.Err, e.Command) }
func (e *RefusedError) Unwrap() error { return e.Err }

// HTTPStatusError carries an HTTP response's status code to a Classifier.
type HTTPStatusError struct{ Code int }

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("HTTP %d %s", e.Code, http.StatusText(e.Code))
}
