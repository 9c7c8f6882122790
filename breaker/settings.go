package breaker

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/afex/hystrix-go/hystrix"

	"github.com/rpcguard/rpcguard/outcome"
)

// Settings configure one command's circuit. A zero field takes its default,
// and the defaults never refuse, cut or slow a call that a healthy
// dependency would serve: no timeout and no concurrency limit unless you set
// one.
type Settings struct {
	// Timeout bounds a call: its context's deadline, which cancels the
	// work. Default 0: none, the caller's own deadline rules. (hystrix's
	// default of 1 s cut every longer call, whatever its deadline.) Streams
	// have none.
	Timeout time.Duration
	// MaxConcurrent is how many calls of the command may run at once; more
	// are rejected at once (ErrRejected), never queued. Default 0: no limit.
	// A rejection is the breaker's own load shedding and says nothing about
	// the dependency's health, so it never counts against the circuit.
	MaxConcurrent int
	// VolumeThreshold is how many calls the rolling 10 s window needs before
	// the error rate can open the circuit. Default 20.
	VolumeThreshold int
	// SleepWindow is how long an open circuit rejects calls before it lets
	// one probe through. Default 5 s.
	SleepWindow time.Duration
	// ErrorPercent opens the circuit when failures (Classifier's Failure, and
	// Timeout) reach this share of the window's calls, in 1..100. Calls the
	// breaker refused itself (open circuit, MaxConcurrent) are not counted.
	// Default 90: the circuit is for a dependency that is down (at most one
	// call in ten succeeds) or so slow that its calls time out, not for one
	// that is degraded. In a brownout (every node failing 60% of attempts) a
	// circuit at hystrix's 50% opens and its probes keep failing: it refuses
	// calls of which 40% would have succeeded, and serves less than no
	// library at all. Below 90% the retry budget bounds what the failures
	// cost the dependency (retries add at most Budget.Ratio of the
	// successful traffic) and the caller gets what the dependency can give.
	// A run of 2 × VolumeThreshold failures in a row also opens it, so that
	// an outage that begins while the window still holds successful calls
	// opens it at once, not once they have left the 10 s window.
	ErrorPercent int
	// MetricsRate is how many outcomes a second, at most, reach the
	// circuit's rolling metrics (hystrix's, which cost about 1.5 µs and a
	// goroutine each, and cut a busy client's throughput): bursts of up to
	// a second's worth all go, and past the rate about one outcome every
	// 1/MetricsRate seconds, so that the error rate the circuit decides on
	// is its average over time, while the dashboard's counts are the
	// sample's. It is raised to a fifth of
	// VolumeThreshold when lower, so that a window can reach the volume;
	// while the circuit has refused a call within the last two sleep
	// windows (open, or probing), every outcome goes. Default 200; -1: all.
	MetricsRate int
}

// DefaultSettings returns the defaults: no timeout, no concurrency limit, a
// volume of 20, a 5 s sleep window, 90% failures, at most 200 outcomes a
// second to the metrics.
func DefaultSettings() Settings {
	return Settings{VolumeThreshold: 20, SleepWindow: 5 * time.Second, ErrorPercent: 90, MetricsRate: 200}
}

func (s Settings) withDefaults() Settings {
	d := DefaultSettings()
	if s.VolumeThreshold == 0 {
		s.VolumeThreshold = d.VolumeThreshold
	}
	if s.SleepWindow == 0 {
		s.SleepWindow = d.SleepWindow
	}
	if s.ErrorPercent == 0 {
		s.ErrorPercent = d.ErrorPercent
	}
	if s.MetricsRate == 0 {
		s.MetricsRate = d.MetricsRate
	}
	return s
}

func (s Settings) validate(command string) error {
	where := "breaker: settings"
	if command != "" {
		where = fmt.Sprintf("breaker: settings of %q", command)
	}
	switch {
	case s.Timeout < 0 || (s.Timeout > 0 && s.Timeout < time.Millisecond):
		return fmt.Errorf("%s: Timeout must be 0 (none) or at least 1ms (hystrix counts milliseconds), got %v", where, s.Timeout)
	case s.MaxConcurrent < 0:
		return fmt.Errorf("%s: MaxConcurrent must be 0 (no limit) or positive, got %d", where, s.MaxConcurrent)
	case s.VolumeThreshold < 1:
		return fmt.Errorf("%s: VolumeThreshold must be at least 1, got %d", where, s.VolumeThreshold)
	case s.SleepWindow < time.Millisecond:
		return fmt.Errorf("%s: SleepWindow must be at least 1ms, got %v", where, s.SleepWindow)
	case s.ErrorPercent < 1 || s.ErrorPercent > 100:
		return fmt.Errorf("%s: ErrorPercent must be in 1..100, got %d", where, s.ErrorPercent)
	case s.MetricsRate < -1:
		return fmt.Errorf("%s: MetricsRate must be -1 (every outcome), 0 (the default) or positive, got %d", where, s.MetricsRate)
	}
	return nil
}

// hystrix converts the settings for hystrix.ConfigureCommand. hystrix uses
// Timeout and MaxConcurrentRequests only in hystrix.Do, which the Breaker
// does not call; they are passed for the dashboard stream. "None" is shown
// as the largest timeout hystrix can hold, and an unlimited concurrency as
// hystrix's default of 10 (its executor pool allocates a ticket per slot).
func (s Settings) hystrix() hystrix.CommandConfig {
	timeout := math.MaxInt32
	if s.Timeout > 0 {
		timeout = int(s.Timeout / time.Millisecond)
	}
	return hystrix.CommandConfig{
		Timeout:                timeout,
		MaxConcurrentRequests:  s.MaxConcurrent,
		RequestVolumeThreshold: s.VolumeThreshold,
		SleepWindow:            int(s.SleepWindow / time.Millisecond),
		ErrorPercentThreshold:  s.ErrorPercent,
	}
}

// Hooks observe a Breaker. Each may be nil; they run on the call's
// goroutine and must not block.
type Hooks struct {
	// OnEvent runs for every call with the command (without the namespace)
	// and hystrix's name for what happened: success, failure, timeout,
	// short-circuit, rejected, context_canceled or
	// context_deadline_exceeded, then fallback-success or fallback-failure
	// when a fallback ran. Only success, failure and timeout reach the
	// circuit: the caller's cancellations are neutral, and the breaker's
	// own refusals (short-circuit, rejected) say nothing about the
	// dependency.
	OnEvent func(command, event string)
	// OnDropped runs when hystrix's metrics channel was full and the event
	// was lost to its rolling metrics (the circuit's state is still right).
	OnDropped func(command, event string)
}

// Fallback answers a call that failed: short-circuited, rejected, timed
// out, or failed. Its error replaces the call's (nil: the fallback served
// the call).
type Fallback func(ctx context.Context, command string, err error) error

type options struct {
	namespace string
	defaults  Settings
	commands  map[string]Settings
	classify  outcome.Classifier
	fallback  Fallback
	hooks     Hooks
}

// Option configures a Breaker.
type Option func(*options) error

var namespaceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// WithNamespace sets the prefix of every hystrix command the Breaker
// creates ("NAMESPACE/COMMAND"). Required: letters, digits, '.', '_', '-'.
func WithNamespace(ns string) Option {
	return func(o *options) error {
		if !namespaceRE.MatchString(ns) {
			return fmt.Errorf("breaker: WithNamespace(%q): want letters, digits, '.', '_' or '-', starting with a letter or digit", ns)
		}
		o.namespace = ns
		return nil
	}
}

// WithSettings sets the settings of every command without settings of its
// own (zero fields take DefaultSettings' values).
func WithSettings(s Settings) Option {
	return func(o *options) error {
		s = s.withDefaults()
		if err := s.validate(""); err != nil {
			return err
		}
		o.defaults = s
		return nil
	}
}

// WithCommandSettings sets the settings of one command, named as the
// adapters name it: a gRPC full method ("/pkg.Service/Method"), an HTTP
// "METHOD PATTERN" ("GET /users/{id}"), or the plain API's name.
func WithCommandSettings(command string, s Settings) Option {
	return func(o *options) error {
		if command == "" {
			return fmt.Errorf("breaker: WithCommandSettings: empty command name")
		}
		s = s.withDefaults()
		if err := s.validate(command); err != nil {
			return err
		}
		if o.commands == nil {
			o.commands = map[string]Settings{}
		}
		o.commands[command] = s
		return nil
	}
}

// WithClassifier sets what counts against the circuit: a Failure counts, a
// Success is an answer, a Neutral is not reported. Default
// outcome.Default (server-side failures only; cancellation and
// ResourceExhausted neutral), the same table the selector ejects nodes by.
func WithClassifier(c outcome.Classifier) Option {
	return func(o *options) error {
		if c == nil {
			return fmt.Errorf("breaker: WithClassifier: nil classifier")
		}
		o.classify = c
		return nil
	}
}

// WithFallback sets a fallback for failed calls.
func WithFallback(f Fallback) Option {
	return func(o *options) error {
		if f == nil {
			return fmt.Errorf("breaker: WithFallback: nil fallback")
		}
		o.fallback = f
		return nil
	}
}

// WithHooks sets the hooks.
func WithHooks(h Hooks) Option {
	return func(o *options) error { o.hooks = h; return nil }
}
