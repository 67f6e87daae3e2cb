package awsclient

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync/atomic"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the AWS API call metrics. The first middleware of every client that Load's
// configuration builds counts each call once, whichever source or job makes it, and each of its
// retries.
type Metrics struct {
	calls   *prometheus.CounterVec
	retries *prometheus.CounterVec
	paired  bool // labelled by account and region too: see For
}

// NewMetrics creates the API-call counters and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics { return newMetrics(reg, nil) }

// NewPairMetrics is NewMetrics for several (account, region) pairs: the counters are labelled by
// account and region too, and each pair counts its calls in its own For.
func NewPairMetrics(reg prometheus.Registerer) *Metrics {
	return newMetrics(reg, []string{"account", "region"})
}

func newMetrics(reg prometheus.Registerer, pairLabels []string) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_sd_aws_api_calls_total",
			Help: "AWS API operations called (after retries), by service, operation and outcome (success, error, throttled, timeout).",
		}, append(slices.Clone(pairLabels), "service", "operation", "outcome")),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecs_sd_aws_api_retries_total",
			Help: "Failed attempts of AWS API calls that were retried, by service, operation and error code (the AWS error code, or timeout, connection, http_<status>).",
		}, append(slices.Clone(pairLabels), "service", "operation", "code")),
		paired: pairLabels != nil,
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.retries)
	}
	return m
}

// For returns the metrics of the calls made in one account and region: m itself unless m is
// labelled by pair (NewPairMetrics).
func (m *Metrics) For(account, region string) *Metrics {
	if m == nil || !m.paired {
		return m
	}
	l := prometheus.Labels{"account": account, "region": region}
	return &Metrics{calls: m.calls.MustCurryWith(l), retries: m.retries.MustCurryWith(l)}
}

// Calls returns the call counter, for tests and benchmarks that count calls per operation.
func (m *Metrics) Calls() *prometheus.CounterVec { return m.calls }

// Retries returns the retry counter.
func (m *Metrics) Retries() *prometheus.CounterVec { return m.retries }

// observe counts a finished call by outcome, and every attempt of it that the SDK retried by its
// error code. The call's metadata holds the result of each attempt.
func (m *Metrics) observe(ctx context.Context, md middleware.Metadata, err error) {
	if n, ok := ctx.Value(callCountKey{}).(*atomic.Int64); ok {
		n.Add(1)
	}
	service, op := awsmiddleware.GetServiceID(ctx), awsmiddleware.GetOperationName(ctx)
	m.calls.WithLabelValues(service, op, Outcome(err)).Inc()
	attempts, _ := retry.GetAttemptResults(md)
	for _, a := range attempts.Results {
		if a.Retried {
			m.retries.WithLabelValues(service, op, ErrorCode(a.Err)).Inc()
		}
	}
}

type callCountKey struct{}

// CountCalls returns a context in which the calls that clients with metrics make (after retries,
// as ecs_sd_aws_api_calls_total counts them) are counted, and the function that tells how many
// were made so far: the refresh loop's count of a discovery's calls.
func CountCalls(ctx context.Context) (context.Context, func() int) {
	n := new(atomic.Int64)
	return context.WithValue(ctx, callCountKey{}, n), func() int { return int(n.Load()) }
}

// Outcome classifies an API error for metrics: "success", "throttled", "timeout" (the call or
// its last attempt ran out of time) or "error".
func Outcome(err error) string {
	switch {
	case err == nil:
		return "success"
	case isThrottle(err):
		return "throttled"
	case isTimeout(err):
		return "timeout"
	}
	return "error"
}

// ErrorCode names what went wrong in an AWS API error, for metrics: the AWS error code when AWS
// sent one (ThrottlingException, AccessDeniedException, ...); else "timeout" (no answer in time),
// "http_<status>" (an answer that is no AWS error, a proxy's HTML page say), or "connection"
// (refused, reset, closed).
func ErrorCode(err error) string {
	var apiErr smithy.APIError
	var status interface{ HTTPStatusCode() int }
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode() != "":
		return apiErr.ErrorCode()
	case isTimeout(err):
		return "timeout"
	case errors.As(err, &status) && status.HTTPStatusCode() != 0:
		return "http_" + strconv.Itoa(status.HTTPStatusCode())
	}
	return "connection"
}

func isThrottle(err error) bool {
	if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err).Bool() {
		return true
	}
	// ECS's throttling error has no modelled type: its code is all there is.
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "ThrottlingException"
}

// isTimeout reports a call or attempt that ran out of time: a *TimeoutError, an HTTP client
// timeout, or a context deadline.
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &t) && t.Timeout())
}
