package retry

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/rpcguard/rpcguard/selector"
)

// Backoff is the exponential backoff used before a retry on a node the call
// already tried. The zero value of a field takes its default.
type Backoff struct {
	Initial    time.Duration // the first wait; default 50 ms
	Max        time.Duration // the cap on one wait; default 2 s
	Multiplier float64       // growth per retry, at least 1; default 2
	Jitter     float64       // randomization factor in [0, 1): ±Jitter × the wait; default 0.5
	// Func, instead of the fields above, builds a backoff of your own for
	// each call that needs one (a BackOff is not safe to share);
	// backoff.Stop ends the retries.
	Func func() backoff.BackOff
}

func (b Backoff) withDefaults() Backoff {
	if b.Func != nil {
		return b
	}
	if b.Initial == 0 {
		b.Initial = 50 * time.Millisecond
	}
	if b.Max == 0 {
		b.Max = max(2*time.Second, b.Initial)
	}
	if b.Multiplier == 0 {
		b.Multiplier = 2
	}
	if b.Jitter == 0 {
		b.Jitter = 0.5
	}
	return b
}

func (b Backoff) validate() error {
	if b.Func != nil {
		if b.Initial != 0 || b.Max != 0 || b.Multiplier != 0 || b.Jitter != 0 {
			return fmt.Errorf("retry: Backoff: set Func or the exponential fields, not both")
		}
		return nil
	}
	switch {
	case b.Initial < 0:
		return fmt.Errorf("retry: Backoff.Initial must not be negative, got %v", b.Initial)
	case b.Max < b.Initial:
		return fmt.Errorf("retry: Backoff.Max (%v) must not be below Initial (%v)", b.Max, b.Initial)
	case !(b.Multiplier >= 1) || math.IsInf(b.Multiplier, 1): // NaN fails every comparison
		return fmt.Errorf("retry: Backoff.Multiplier must be a finite number of at least 1, got %v", b.Multiplier)
	case !(b.Jitter >= 0 && b.Jitter < 1):
		return fmt.Errorf("retry: Backoff.Jitter must be in [0, 1), got %v", b.Jitter)
	}
	return nil
}

func (b Backoff) newBackOff() backoff.BackOff {
	if b.Func != nil {
		return b.Func()
	}
	e := backoff.NewExponentialBackOff()
	e.InitialInterval, e.MaxInterval = b.Initial, b.Max
	e.Multiplier, e.RandomizationFactor = b.Multiplier, b.Jitter
	e.MaxElapsedTime = 0 // the call's deadline and MaxAttempts bound retries
	e.Reset()
	return e
}

// Budget bounds retries across all calls of one Policy. Retries (and
// hedges) are paid with tokens that successful calls earn: every call that
// succeeds earns Ratio tokens, every retry spends one, and MinPerSecond
// tokens come every second whatever happens (so that a client with few
// calls can retry). The balance starts full and never exceeds
// max(MinPerSecond, 10 × Ratio) tokens (10 by default), so that a long
// healthy spell does not store up a storm; a zero Budget allows no retry.
//
// Earning by success, not by call, gives both things a budget is for. One
// bad node among three needs a retry for a third of the calls, and those
// calls then succeed: with Ratio 0.5 they earn more than they spend, so
// every call goes through (gRPC's retry throttling, gRFC A6, charges every
// failure and throttles this case; a budget of 20% of calls, as Finagle's,
// refuses a third of these retries). When everything fails, nothing is
// earned: retries fall to MinPerSecond a second, and the dependency sees
// about one attempt per call. In between, retries add at most Ratio × the
// successful traffic.
type Budget struct {
	Ratio        float64 // tokens a successful call earns, in [0, 1]; default 0.5
	MinPerSecond int     // tokens a second, at least 0; default 10
	Off          bool    // no budget at all (the other fields must be zero)
}

// DefaultBudget returns the default budget: half a retry earned per
// successful call, plus 10 retries a second.
func DefaultBudget() Budget { return Budget{Ratio: 0.5, MinPerSecond: 10} }

func (b Budget) validate() error {
	if b.Off && (b.Ratio != 0 || b.MinPerSecond != 0) {
		return fmt.Errorf("retry: Budget: Off with Ratio %v and MinPerSecond %d: set one or the other", b.Ratio, b.MinPerSecond)
	}
	if b.Ratio < 0 || b.Ratio > 1 || b.Ratio != b.Ratio {
		return fmt.Errorf("retry: Budget.Ratio must be in [0, 1], got %v", b.Ratio)
	}
	if b.MinPerSecond < 0 {
		return fmt.Errorf("retry: Budget.MinPerSecond must not be negative, got %d", b.MinPerSecond)
	}
	return nil
}

// RetryInfo describes an attempt after the first, about to start: a retry
// (OnRetry, before its wait) or a hedge (OnHedge).
type RetryInfo struct {
	Method  string // the gRPC full method, or "" for the plain API
	Attempt int    // the number of the attempt about to start (2 for the first retry or hedge)
	// Delay is a retry's wait before it, or how long after the call's start
	// a hedge starts.
	Delay time.Duration
	Err   error         // a retry's: the previous attempt's error
	Node  selector.Node // a retry's: the previous attempt's node, if known
}

// Hooks observe a Policy. Each may be nil; they run on the call's goroutine
// and must not block.
type Hooks struct {
	OnRetry func(ctx context.Context, r RetryInfo)
	OnHedge func(ctx context.Context, h RetryInfo)
}

type config struct {
	noLimit     bool
	maxAttempts int
	perAttempt  time.Duration
	backoff     Backoff
	freshDelay  time.Duration
	budget      *Budget
	codes       [17]bool // retryable gRPC codes
	retryIf     func(error, bool) bool
	idempotent  []string // method patterns
	hedges      []hedgeRule
	hooks       Hooks
}

type hedgeRule struct {
	pattern string
	delay   time.Duration
}

// Option configures a Policy.
type Option func(*config) error

// WithMaxAttempts sets the most attempts per call, the first included
// (1 disables retries). Default 3.
func WithMaxAttempts(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("retry: WithMaxAttempts(%d): a call needs at least 1 attempt", n)
		}
		c.maxAttempts = n
		return nil
	}
}

// WithPerAttemptTimeout bounds each attempt (0: no bound but the call's
// deadline). An attempt that times out is retried. Default 0.
func WithPerAttemptTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("retry: WithPerAttemptTimeout(%v): must not be negative", d)
		}
		c.perAttempt = d
		return nil
	}
}

// WithBackoff sets the backoff before a retry on a node the call already
// tried: exponential (see Backoff's fields) or your own (Backoff.Func).
func WithBackoff(b Backoff) Option {
	return func(c *config) error {
		b = b.withDefaults()
		if err := b.validate(); err != nil {
			return err
		}
		c.backoff = b
		return nil
	}
}

// WithFreshNodeDelay sets the wait before a retry that goes to a node the
// call has not tried. Default 0.
func WithFreshNodeDelay(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("retry: WithFreshNodeDelay(%v): must not be negative", d)
		}
		c.freshDelay = d
		return nil
	}
}

// WithoutConcurrencyLimit turns off the adaptive concurrency limit. By
// default, once a server answers ResourceExhausted (the fleet is full), the
// Policy limits its attempts in flight to what the fleet took (AIMD, in the
// manner of Netflix's concurrency-limits), and attempts past the limit wait
// their turn, in order, within their caller's deadline, instead of being
// refused and retried at once; after 5 s without a refusal the limit is off
// again. A healthy fleet never answers ResourceExhausted, so the limit never
// slows it.
func WithoutConcurrencyLimit() Option {
	return func(c *config) error { c.noLimit = true; return nil }
}

// WithBudget sets the retry budget (see Budget); Budget{Off: true} removes
// it, so that every call may use all its attempts (prefer a budget in
// production). Default DefaultBudget().
func WithBudget(b Budget) Option {
	return func(c *config) error {
		if err := b.validate(); err != nil {
			return err
		}
		c.budget = &b
		if b.Off {
			c.budget = nil
		}
		return nil
	}
}

// WithRetryableCodes sets the gRPC codes that are retried (transport
// failures and attempt timeouts are retried in any case). OK and Canceled
// cannot be retryable. Default: Unavailable and ResourceExhausted.
func WithRetryableCodes(cs ...codes.Code) Option {
	return func(c *config) error {
		c.codes = [17]bool{}
		for _, code := range cs {
			if code == codes.OK || code == codes.Canceled || code > codes.Unauthenticated {
				return fmt.Errorf("retry: WithRetryableCodes: %v cannot be retryable", code)
			}
			c.codes[code] = true
		}
		return nil
	}
}

// WithRetryIf decides which attempt errors are retryable: f gets the error
// and the default rules' answer (WithRetryableCodes, transport failures,
// NotSent and Retryable marks), and returns its own; returning retryable
// keeps the defaults. The caller's own cancellation and deadline still end
// the call.
func WithRetryIf(f func(err error, retryable bool) bool) Option {
	return func(c *config) error {
		if f == nil {
			return fmt.Errorf("retry: WithRetryIf: nil function")
		}
		c.retryIf = f
		return nil
	}
}

// WithIdempotent marks methods idempotent: they are retried even after an
// attempt may have reached a server, and may be hedged. A pattern is a gRPC
// full method ("/pkg.Service/Method"), a service ("/pkg.Service/*"), or "*"
// for every method (the plain API's calls have the method "" unless
// retry.Method names them); another transport's method names ("Greeter.Hello",
// "Greeter.*") work too.
func WithIdempotent(patterns ...string) Option {
	return func(c *config) error {
		for _, p := range patterns {
			if err := validPattern(p); err != nil {
				return fmt.Errorf("retry: WithIdempotent: %w", err)
			}
		}
		c.idempotent = append(c.idempotent, patterns...)
		return nil
	}
}

// WithHedging hedges the matching methods: when an attempt has not answered
// after delay, the same request goes to another node, up to MaxAttempts in
// flight; an attempt that fails with a retryable error starts the next one
// at once. Every method it names must be marked idempotent (WithIdempotent).
func WithHedging(delay time.Duration, patterns ...string) Option {
	return func(c *config) error {
		if delay <= 0 {
			return fmt.Errorf("retry: WithHedging(%v): the hedge delay must be positive", delay)
		}
		if len(patterns) == 0 {
			return fmt.Errorf("retry: WithHedging: name the idempotent methods to hedge")
		}
		for _, p := range patterns {
			if err := validPattern(p); err != nil {
				return fmt.Errorf("retry: WithHedging: %w", err)
			}
			c.hedges = append(c.hedges, hedgeRule{p, delay})
		}
		return nil
	}
}

// WithHooks sets the hooks.
func WithHooks(h Hooks) Option {
	return func(c *config) error { c.hooks = h; return nil }
}

// validPattern checks a method pattern: "*"; a gRPC full method or service
// ("/pkg.Service/Method", "/pkg.Service/*"); or, for other transports, a
// method name without '/' or spaces ("Greeter.Hello", "Get"), which may end
// in "*" to match a prefix ("Greeter.*"). A name with a '/' that is not a
// gRPC full method is refused: it is most likely one missing its leading
// slash.
func validPattern(p string) error {
	if p == "*" {
		return nil
	}
	if strings.ContainsAny(p, " \t\n") || p == "" {
		return fmt.Errorf("method pattern %q: empty or with spaces", p)
	}
	if !strings.Contains(p, "/") {
		return nil // a method name of another transport
	}
	svc, m, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if !strings.HasPrefix(p, "/") || !ok || svc == "" || m == "" || strings.Contains(m, "/") {
		return fmt.Errorf("method pattern %q: want \"/pkg.Service/Method\", \"/pkg.Service/*\", a method name without '/', or \"*\"", p)
	}
	return nil
}

func matches(pattern, method string) bool {
	if pattern == "*" || pattern == method {
		return true
	}
	svc, ok := strings.CutSuffix(pattern, "*")
	return ok && strings.HasPrefix(method, svc)
}

// CallOption overrides a Policy for one call. It is also a grpc.CallOption,
// so it can be passed to a gRPC call through the interceptors.
type CallOption struct {
	grpc.EmptyCallOption
	apply  func(*callConfig)
	method *string // Method's name, resolved before the rest
}

// on returns c with the option applied. (Applying it through a pointer to
// the caller's copy would move every call's config to the heap; kept out of
// line, only a call that has options pays for the copy.)
//
//go:noinline
func (o CallOption) on(c callConfig) callConfig {
	if o.apply != nil {
		o.apply(&c)
	}
	return c
}

// Idempotent marks (or unmarks) this call idempotent.
func Idempotent(b bool) CallOption {
	return CallOption{apply: func(c *callConfig) { c.idempotent = b }}
}

// MaxAttempts overrides the most attempts for this call (1 disables
// retries; below 1 the call fails with InvalidArgument).
func MaxAttempts(n int) CallOption {
	return CallOption{apply: func(c *callConfig) {
		if n < 1 {
			c.err = fmt.Errorf("retry: MaxAttempts(%d): a call needs at least 1 attempt", n)
		}
		c.maxAttempts = n
	}}
}

// PerAttemptTimeout overrides the per-attempt timeout for this call (0: none;
// negative: the call fails with InvalidArgument).
func PerAttemptTimeout(d time.Duration) CallOption {
	return CallOption{apply: func(c *callConfig) {
		if d < 0 {
			c.err = fmt.Errorf("retry: PerAttemptTimeout(%v): must not be negative", d)
		}
		c.perAttempt = d
	}}
}
