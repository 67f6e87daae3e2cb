package awsclient

import (
	"context"
	"errors"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the AWS API call metrics. A middleware on every client that Load's configuration
// builds counts each call once, whichever source or job makes it.
type Metrics struct {
	calls *prometheus.CounterVec
}

// NewMetrics creates the API-call counter and registers it with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{calls: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ecs_sd_aws_api_calls_total",
		Help: "AWS API operations called (after retries), by service, operation and outcome (success, error, throttled).",
	}, []string{"service", "operation", "outcome"})}
	if reg != nil {
		reg.MustRegister(m.calls)
	}
	return m
}

// Calls returns the counter, for tests and benchmarks that count calls per operation.
func (m *Metrics) Calls() *prometheus.CounterVec { return m.calls }

// addMiddleware counts every call once, after the SDK's retries, by service, operation and outcome.
func (m *Metrics) addMiddleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ecsSDAPICallMetrics",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			m.calls.WithLabelValues(awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx), Outcome(err)).Inc()
			return out, md, err
		}), middleware.After)
}

// Outcome classifies an API error for metrics: "success", "throttled" or "error".
func Outcome(err error) string {
	if err == nil {
		return "success"
	}
	if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err).Bool() {
		return "throttled"
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "ThrottlingException" {
		return "throttled"
	}
	return "error"
}
