package retry

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/internal/grpcerr"
	"github.com/rpcguard/rpcguard/selector"
)

// Why retries stopped, when it was not the error itself. errors.Is finds
// them in the *Error a call returns; the call's gRPC status stays that of
// its last attempt.
var (
	// ErrBudgetExhausted: the Policy's retry budget had no room for a retry.
	// Standing alone it answers ResourceExhausted.
	ErrBudgetExhausted error = &grpcerr.Sentinel{Msg: "retry: retry budget exhausted", Code: codes.ResourceExhausted}
	// ErrFleetFull: servers refused attempts with ResourceExhausted, and
	// an attempt waited for a slot under the Policy's adaptive concurrency
	// limit for 8 attempts' time without one: the queue does not move, and
	// the call ends rather than wait to its deadline. It answers
	// ResourceExhausted.
	ErrFleetFull error = &grpcerr.Sentinel{Msg: "retry: the fleet is full (ResourceExhausted): no slot for another attempt", Code: codes.ResourceExhausted}
	// ErrAttemptsExhausted: the call used all its attempts.
	ErrAttemptsExhausted error = &grpcerr.Sentinel{Msg: "retry: attempts exhausted", Code: codes.Unavailable}
)

// FailedAttempt is one attempt of a call that failed, as Error lists it.
type FailedAttempt struct {
	Number   int
	Hedge    bool
	Node     selector.Node // zero when no selector picked the node
	Err      error
	Delay    time.Duration // the wait before it
	Duration time.Duration
}

// Error is the error of a call that made more than one attempt, or that
// stopped for a reason of its own (budget, attempts). Err is the last error
// that came from an attempt: its text is the call's (what a caller would
// have seen without retries), status.Code(err) and errors.Is/As see
// through to it, and errors.Is also finds Reason. errors.As gives the whole
// story: Attempts, Reason, and Summary for a log line.
type Error struct {
	Attempts []FailedAttempt
	Err      error
	Reason   error // ErrBudgetExhausted, ErrAttemptsExhausted, or nil
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Err.Error() // what the caller would have seen without retries
	}
	return e.Reason.Error()
}

// Summary tells the call's story for a log line: how many attempts, why
// retries stopped, the last error, and each attempt's node, code and
// duration.
func (e *Error) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "retry: %d attempt", len(e.Attempts))
	if len(e.Attempts) != 1 {
		b.WriteByte('s')
	}
	if e.Reason != nil {
		fmt.Fprintf(&b, ", %s", strings.TrimPrefix(e.Reason.Error(), "retry: "))
	}
	fmt.Fprintf(&b, ": %v [", e.Err)
	for i, a := range e.Attempts {
		if i > 0 {
			b.WriteString("; ")
		}
		node := a.Node.ID
		if node == "" {
			node = "(no node picked)"
		}
		fmt.Fprintf(&b, "#%d %s %v in %v", a.Number, node, status.Code(a.Err), a.Duration.Round(time.Microsecond))
		if a.Hedge {
			b.WriteString(" (hedge)")
		}
	}
	b.WriteByte(']')
	return b.String()
}

// Unwrap returns the last error and, if set, the reason.
func (e *Error) Unwrap() []error {
	if e.Reason == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Reason}
}

// NotSent marks err, returned by a plain-API attempt function, as the error
// of an attempt that never reached the server (no connection was made,
// nothing was written), so that a call not marked idempotent may be retried.
func NotSent(err error) error {
	if err == nil {
		return nil
	}
	return &notSentError{err}
}

type notSentError struct{ error }

func (e *notSentError) Unwrap() error { return e.error }

func isNotSent(err error) bool {
	var ns *notSentError
	return errors.As(err, &ns)
}

// Retryable marks err, returned by a plain-API attempt function, as
// retryable whatever its code: the one word for "try another node". (A
// plain error without a gRPC status counts as gRPC's Unknown for every
// engine: a failure of the node and of the dependency, not retried unless
// marked, or a transport error such as a refused connection.) An attempt
// that may have reached a server is still retried only if the call is
// idempotent; wrap with NotSent to say it never left.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &retryableError{err}
}

type retryableError struct{ error }

func (e *retryableError) Unwrap() error { return e.error }

func isMarkedRetryable(err error) bool {
	var re *retryableError
	return errors.As(err, &re)
}
