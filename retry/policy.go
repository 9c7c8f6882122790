package retry

import (
	"fmt"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"google.golang.org/grpc/codes"
)

// Policy is a validated retry configuration with the retry budget its calls
// share. Use one Policy per client (per dependency); it is safe for
// concurrent use.
type Policy struct {
	cfg    config
	budget *budget
	limit  *limiter // nil: WithoutConcurrencyLimit
}

// New builds a Policy. Defaults: 3 attempts, no per-attempt timeout, no
// delay before a retry on an untried node, exponential backoff (50 ms, ×2,
// ±50%, at most 2 s) before a retry on a tried one, DefaultBudget, retryable
// codes Unavailable and ResourceExhausted, no method idempotent, no
// hedging, and the adaptive concurrency limit, which is off until a server
// answers ResourceExhausted (see WithoutConcurrencyLimit).
func New(opts ...Option) (*Policy, error) {
	b := DefaultBudget()
	c := config{maxAttempts: 3, backoff: Backoff{}.withDefaults(), budget: &b}
	c.codes[codes.Unavailable] = true
	c.codes[codes.ResourceExhausted] = true // a full server: retried elsewhere, in turn (see WithoutConcurrencyLimit)
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("retry: nil Option")
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	for _, h := range c.hedges {
		if !c.covered(h.pattern) {
			return nil, fmt.Errorf("retry: WithHedging: %q is not marked idempotent (WithIdempotent): only idempotent calls may be hedged", h.pattern)
		}
	}
	p := &Policy{cfg: c, budget: newBudget(c.budget, time.Now().UnixNano())}
	if !c.noLimit {
		p.limit = &limiter{}
	}
	return p, nil
}

// covered reports whether every method pattern p matches is idempotent.
func (c *config) covered(p string) bool {
	for _, i := range c.idempotent {
		if i == "*" || i == p || (strings.HasSuffix(i, "*") && p != "*" && strings.HasPrefix(p, strings.TrimSuffix(i, "*"))) {
			return true
		}
	}
	return false
}

func (p *Policy) newBackOff() backoff.BackOff { return p.cfg.backoff.newBackOff() }

// callConfig is the Policy as it applies to one call.
type callConfig struct {
	method      string
	idempotent  bool
	maxAttempts int
	perAttempt  time.Duration
	hedgeDelay  time.Duration // 0: no hedging
	err         error         // a bad CallOption
}

// resolve returns the policy's settings for method.
func (p *Policy) resolve(method string) callConfig {
	c := callConfig{method: method, maxAttempts: p.cfg.maxAttempts, perAttempt: p.cfg.perAttempt}
	for _, pat := range p.cfg.idempotent {
		if matches(pat, method) {
			c.idempotent = true
			break
		}
	}
	for _, h := range p.cfg.hedges {
		if matches(h.pattern, method) {
			c.hedgeDelay = h.delay
			break
		}
	}
	return c
}

func (c callConfig) finish() callConfig {
	if !c.idempotent {
		c.hedgeDelay = 0 // Idempotent(false) on a hedged method turns hedging off
	}
	return c
}

// Stats is what a Policy knows of its load, for observers (metrics, a
// debug page): a snapshot.
type Stats struct {
	// Budget is the retries the budget holds now, of at most BudgetMax;
	// both 0 with Budget.Off.
	Budget, BudgetMax float64
	// Limited tells whether the adaptive concurrency limit is on (a server
	// answered ResourceExhausted lately), Limit its value and InFlight the
	// attempts under it.
	Limited  bool
	Limit    float64
	InFlight int64
	// Waiting is the attempts that wait for a slot under the limit (each
	// for at most 8 attempts' time: past that, ErrFleetFull).
	Waiting int
}

// Snapshot returns the Policy's stats.
func (p *Policy) Snapshot() Stats {
	var st Stats
	if b := p.budget; b != nil { // with what the next withdrawal would refill
		bal := min(b.bal.Load()+max(time.Now().UnixNano()-b.last.Load(), 0)*b.rate/1e9, b.cap)
		st.Budget, st.BudgetMax = float64(bal)/milli, float64(b.cap)/milli
	}
	if l := p.limit; l != nil {
		st.InFlight = l.inflight.Load()
		if l.limited.Load() {
			l.mu.Lock()
			st.Limited, st.Limit, st.Waiting = true, l.limit, len(l.waiters)
			l.mu.Unlock()
		}
	}
	return st
}
