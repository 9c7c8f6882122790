package tracing

import (
	"fmt"
	"io"
	"net/url"

	"github.com/opentracing/opentracing-go"
	"github.com/uber/jaeger-client-go"
	"github.com/uber/jaeger-client-go/config"
)

// JaegerOption configures NewJaeger.
type JaegerOption func(*jaegerSetup) error

type jaegerSetup struct {
	cfg      *config.Configuration
	reporter jaeger.Reporter
}

// FromEnv starts from the JAEGER_* environment variables
// (JAEGER_SERVICE_NAME, JAEGER_AGENT_HOST/PORT, JAEGER_ENDPOINT,
// JAEGER_SAMPLER_TYPE/PARAM, ...); options after it override them.
func FromEnv() JaegerOption {
	return func(s *jaegerSetup) error {
		cfg, err := config.FromEnv()
		if err != nil {
			return fmt.Errorf("tracing: JAEGER_* environment: %w", err)
		}
		if s.cfg.ServiceName != "" && cfg.ServiceName == "" {
			cfg.ServiceName = s.cfg.ServiceName
		}
		s.cfg = cfg
		return nil
	}
}

// WithAgent sends spans over UDP to a Jaeger agent at hostPort.
func WithAgent(hostPort string) JaegerOption {
	return func(s *jaegerSetup) error {
		if hostPort == "" {
			return fmt.Errorf("tracing: WithAgent: empty address")
		}
		s.reporterConfig().LocalAgentHostPort = hostPort
		return nil
	}
}

// WithCollector sends spans over HTTP to a Jaeger collector, e.g.
// "http://127.0.0.1:14268/api/traces".
func WithCollector(endpoint string) JaegerOption {
	return func(s *jaegerSetup) error {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("tracing: WithCollector(%q): want an http(s) URL such as http://127.0.0.1:14268/api/traces", endpoint)
		}
		s.reporterConfig().CollectorEndpoint = endpoint
		return nil
	}
}

// WithSampler sets the sampler: "const" (param 1: every trace, 0: none),
// "probabilistic" (param in [0, 1]), "ratelimiting" (param: traces per
// second) or "remote" (an agent's sampling strategy). Default const 1, for
// development; jaeger-client-go's own default, remote, polls an agent.
func WithSampler(typ string, param float64) JaegerOption {
	return func(s *jaegerSetup) error {
		switch {
		case typ == jaeger.SamplerTypeConst && param != 0 && param != 1,
			typ == jaeger.SamplerTypeProbabilistic && (param < 0 || param > 1),
			typ == jaeger.SamplerTypeRateLimiting && param < 0:
			return fmt.Errorf("tracing: WithSampler(%q, %v): bad parameter", typ, param)
		case typ != jaeger.SamplerTypeConst && typ != jaeger.SamplerTypeProbabilistic && typ != jaeger.SamplerTypeRateLimiting && typ != jaeger.SamplerTypeRemote:
			return fmt.Errorf("tracing: WithSampler(%q): want const, probabilistic, ratelimiting or remote", typ)
		}
		s.cfg.Sampler = &config.SamplerConfig{Type: typ, Param: param}
		return nil
	}
}

// WithInMemoryReporter keeps spans in r instead of sending them (tests).
func WithInMemoryReporter(r *jaeger.InMemoryReporter) JaegerOption {
	return func(s *jaegerSetup) error {
		if r == nil {
			return fmt.Errorf("tracing: WithInMemoryReporter: nil reporter")
		}
		s.reporter = r
		return nil
	}
}

func (s *jaegerSetup) reporterConfig() *config.ReporterConfig {
	if s.cfg.Reporter == nil {
		s.cfg.Reporter = &config.ReporterConfig{}
	}
	return s.cfg.Reporter
}

// NewJaeger builds a jaeger-client-go tracer for service and the io.Closer
// that flushes and stops it. Pass the tracer to WithTracer; the package
// sets no global tracer. Spans go to a local agent (127.0.0.1:6831) unless
// an option or the environment says otherwise.
func NewJaeger(service string, opts ...JaegerOption) (opentracing.Tracer, io.Closer, error) {
	s := &jaegerSetup{cfg: &config.Configuration{ServiceName: service}}
	for _, o := range opts {
		if o == nil {
			return nil, nil, fmt.Errorf("tracing: nil JaegerOption")
		}
		if err := o(s); err != nil {
			return nil, nil, err
		}
	}
	if s.cfg.ServiceName == "" {
		return nil, nil, fmt.Errorf("tracing: NewJaeger: empty service name (pass one, or set JAEGER_SERVICE_NAME with FromEnv)")
	}
	if s.cfg.Sampler == nil || s.cfg.Sampler.Type == "" {
		s.cfg.Sampler = &config.SamplerConfig{Type: jaeger.SamplerTypeConst, Param: 1}
	}
	var copts []config.Option
	if s.reporter != nil {
		copts = append(copts, config.Reporter(s.reporter))
	}
	tr, closer, err := s.cfg.NewTracer(copts...)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: NewJaeger: %w", err)
	}
	return tr, closer, nil
}
