package breaker

import (
	"fmt"
	"time"

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
// ErrRejected, Command the command (without the namespace), RetryAfter
// when the call is worth trying again (an open circuit's sleep window; a
// second for a rejection).
type RefusedError struct {
	Command    string
	Err        error
	RetryAfter time.Duration
}

func (e *RefusedError) Error() string { return fmt.Sprintf("%v (%s)", e.Err, e.Command) }
func (e *RefusedError) Unwrap() error { return e.Err }
