// Package jaeger builds a jaeger-client-go tracer from options or the
// JAEGER_* environment, for package tracing (pass it to tracing.WithTracer).
// It is a package of its own so that users of another tracer do not link
// jaeger-client-go.
package jaeger

import (
	"fmt"
	"io"
	"net/url"

	"github.com/opentracing/opentracing-go"
	jaegerclient "github.com/uber/jaeger-client-go"
	"github.com/uber/jaeger-client-go/config"
)

// Option configures New.
type Option func(*setup) error

type setup struct {
	cfg      *config.Configuration
	reporter jaegerclient.Reporter
}

// FromEnv starts from the JAEGER_* environment variables
// (JAEGER_SERVICE_NAME, JAEGER_AGENT_HOST/PORT, JAEGER_ENDPOINT,
// JAEGER_SAMPLER_TYPE/PARAM, ...); options after it override them.
func FromEnv() Option {
	return func(s *setup) error {
		cfg, err := config.FromEnv()
		if err != nil {
			return fmt.Errorf("jaeger: JAEGER_* environment: %w", err)
		}
		if s.cfg.ServiceName != "" && cfg.ServiceName == "" {
			cfg.ServiceName = s.cfg.ServiceName
		}
		s.cfg = cfg
		return nil
	}
}

// WithAgent sends spans over UDP to a Jaeger agent at hostPort.
func WithAgent(hostPort string) Option {
	return func(s *setup) error {
		if hostPort == "" {
			return fmt.Errorf("jaeger: WithAgent: empty address")
		}
		s.reporterConfig().LocalAgentHostPort = hostPort
		return nil
	}
}

// WithCollector sends spans over HTTP to a Jaeger collector, e.g.
// "http://127.0.0.1:14268/api/traces".
func WithCollector(endpoint string) Option {
	return func(s *setup) error {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("jaeger: WithCollector(%q): want an http(s) URL such as http://127.0.0.1:14268/api/traces", endpoint)
		}
		s.reporterConfig().CollectorEndpoint = endpoint
		return nil
	}
}

// WithSampler sets the sampler: "const" (param 1: every trace, 0: none),
// "probabilistic" (param in [0, 1]), "ratelimiting" (param: traces per
// second) or "remote" (an agent's sampling strategy). Default const 1, for
// development; jaeger-client-go's own default, remote, polls an agent.
func WithSampler(typ string, param float64) Option {
	return func(s *setup) error {
		switch {
		case typ == jaegerclient.SamplerTypeConst && param != 0 && param != 1,
			typ == jaegerclient.SamplerTypeProbabilistic && (param < 0 || param > 1),
			typ == jaegerclient.SamplerTypeRateLimiting && param < 0:
			return fmt.Errorf("jaeger: WithSampler(%q, %v): bad parameter", typ, param)
		case typ != jaegerclient.SamplerTypeConst && typ != jaegerclient.SamplerTypeProbabilistic && typ != jaegerclient.SamplerTypeRateLimiting && typ != jaegerclient.SamplerTypeRemote:
			return fmt.Errorf("jaeger: WithSampler(%q): want const, probabilistic, ratelimiting or remote", typ)
		}
		s.cfg.Sampler = &config.SamplerConfig{Type: typ, Param: param}
		return nil
	}
}

// WithInMemoryReporter keeps spans in r instead of sending them (tests).
func WithInMemoryReporter(r *jaegerclient.InMemoryReporter) Option {
	return func(s *setup) error {
		if r == nil {
			return fmt.Errorf("jaeger: WithInMemoryReporter: nil reporter")
		}
		s.reporter = r
		return nil
	}
}

func (s *setup) reporterConfig() *config.ReporterConfig {
	if s.cfg.Reporter == nil {
		s.cfg.Reporter = &config.ReporterConfig{}
	}
	return s.cfg.Reporter
}

// New builds a jaeger-client-go tracer for service and the io.Closer
// that flushes and stops it. Pass the tracer to tracing.WithTracer; the package
// sets no global tracer. Spans go to a local agent (127.0.0.1:6831) unless
// an option or the environment says otherwise.
func New(service string, opts ...Option) (opentracing.Tracer, io.Closer, error) {
	s := &setup{cfg: &config.Configuration{ServiceName: service}}
	for _, o := range opts {
		if o == nil {
			return nil, nil, fmt.Errorf("jaeger: nil Option")
		}
		if err := o(s); err != nil {
			return nil, nil, err
		}
	}
	if s.cfg.ServiceName == "" {
		return nil, nil, fmt.Errorf("jaeger: New: empty service name (pass one, or set JAEGER_SERVICE_NAME with FromEnv)")
	}
	if s.cfg.Sampler == nil || s.cfg.Sampler.Type == "" {
		s.cfg.Sampler = &config.SamplerConfig{Type: jaegerclient.SamplerTypeConst, Param: 1}
	}
	var copts []config.Option
	if s.reporter != nil {
		copts = append(copts, config.Reporter(s.reporter))
	}
	tr, closer, err := s.cfg.NewTracer(copts...)
	if err != nil {
		return nil, nil, fmt.Errorf("jaeger: New: %w", err)
	}
	return tr, closer, nil
}
