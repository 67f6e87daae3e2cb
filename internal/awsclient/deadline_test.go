package awsclient

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/servicediscovery"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// fault is how a test endpoint answers one request.
type fault func(w http.ResponseWriter, r *http.Request)

func answer(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = io.WriteString(w, `{"Namespaces":[]}`)
}

// hold answers nothing until the client gives up.
func hold(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func throttle(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, `{"__type":"ThrottlingException","message":"Rate exceeded"}`)
}

func denied(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, `{"__type":"AccessDeniedException","message":"not authorized"}`)
}

func htmlError(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = io.WriteString(w, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>")
}

// reset closes the connection with a TCP RST instead of answering.
func reset(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	_ = conn.(*net.TCPConn).SetLinger(0)
	_ = conn.Close()
}

// endpoint serves the n-th request with faults[n] (the last one for every later request).
func endpoint(t *testing.T, faults ...fault) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // read it all, so that a client that leaves is noticed
		i := int(n.Add(1)) - 1
		faults[min(i, len(faults)-1)](w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func listNamespaces(t *testing.T, url string, opts Options, m *Metrics) (time.Duration, error) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	opts.Region, opts.EndpointURL = "us-east-1", url
	cfg, err := Load(context.Background(), opts, m)
	require.NoError(t, err)
	start := time.Now()
	_, err = CloudMap(cfg).ListNamespaces(context.Background(), &servicediscovery.ListNamespacesInput{})
	return time.Since(start), err
}

// TestDeadlinesAndRetries: an attempt that gets no answer within the attempt timeout is retried;
// a call is given up at its call timeout; every retried attempt is counted by its error code, also
// when the call then succeeds.
func TestDeadlinesAndRetries(t *testing.T) {
	// The call timeout leaves room for every attempt and back-off (throttling backs off up to 1 s,
	// then 2 s): TestCallTimeoutBoundsRetries is about the call timeout.
	opts := Options{AttemptTimeout: 200 * time.Millisecond, CallTimeout: 10 * time.Second}
	cases := []struct {
		name     string
		faults   []fault
		outcome  string
		retries  map[string]float64 // by code
		requests int32
	}{
		{name: "held attempt retried", faults: []fault{hold, answer}, outcome: "success", retries: map[string]float64{"timeout": 1}, requests: 2},
		{name: "throttled then answered", faults: []fault{throttle, throttle, answer}, outcome: "success", retries: map[string]float64{"ThrottlingException": 2}, requests: 3},
		{name: "html 503 then answered", faults: []fault{htmlError, answer}, outcome: "success", retries: map[string]float64{"http_503": 1}, requests: 2},
		{name: "connection reset then answered", faults: []fault{reset, answer}, outcome: "success", retries: map[string]float64{"connection": 1}, requests: 2},
		{name: "every attempt held", faults: []fault{hold}, outcome: "timeout", retries: map[string]float64{"timeout": 4}, requests: 5},
		{name: "denied, not retried", faults: []fault{denied}, outcome: "error", retries: map[string]float64{}, requests: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, n := endpoint(t, c.faults...)
			m := NewMetrics(prometheus.NewRegistry())
			_, err := listNamespaces(t, srv.URL, opts, m)
			if c.outcome == "success" {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
			require.Equal(t, 1.0, testutil.ToFloat64(m.Calls().WithLabelValues("ServiceDiscovery", "ListNamespaces", c.outcome)))
			require.Equal(t, len(c.retries), testutil.CollectAndCount(m.Retries()))
			for code, want := range c.retries {
				require.Equal(t, want, testutil.ToFloat64(m.Retries().WithLabelValues("ServiceDiscovery", "ListNamespaces", code)), code)
			}
			require.Equal(t, c.requests, n.Load())
		})
	}
}

// TestCallTimeoutBoundsRetries: an endpoint that holds every request costs a call its call
// timeout, not its attempts times their timeout, and the error says so.
func TestCallTimeoutBoundsRetries(t *testing.T) {
	srv, _ := endpoint(t, hold)
	m := NewMetrics(nil)
	took, err := listNamespaces(t, srv.URL, Options{AttemptTimeout: 400 * time.Millisecond, CallTimeout: 600 * time.Millisecond}, m)
	var timeout *TimeoutError
	require.ErrorAs(t, err, &timeout)
	require.Equal(t, 600*time.Millisecond, timeout.Limit)
	require.ErrorContains(t, err, "no answer within the call timeout of 600ms")
	require.Less(t, took, 900*time.Millisecond)
	require.GreaterOrEqual(t, took, 600*time.Millisecond)
	require.Equal(t, "timeout", Outcome(err))
}

// TestCABundleReachesTheClient: with AWS_CA_BUNDLE set, the configuration loads (a plain
// http.Client would be refused) and a TLS endpoint signed by that bundle is trusted.
func TestCABundleReachesTheClient(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(answer))
	defer srv.Close()
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	t.Setenv("AWS_CA_BUNDLE", bundle)
	_, err := listNamespaces(t, srv.URL, Options{AttemptTimeout: time.Second, CallTimeout: 2 * time.Second}, nil)
	require.NoError(t, err)
}

func TestErrorCode(t *testing.T) {
	t.Parallel()
	require.Equal(t, "timeout", ErrorCode(&TimeoutError{Limit: time.Second, Err: context.DeadlineExceeded}))
	require.Equal(t, "connection", ErrorCode(io.ErrUnexpectedEOF))
	require.Equal(t, "success", Outcome(nil))
	require.Equal(t, "error", Outcome(errors.New("no such thing")))
}

// TestLongPollOutlastsTheTimeouts: an SQS ReceiveMessage that waits for messages longer than the
// attempt and call timeouts is answered (one request, no retry), while another SQS call to the
// same slow endpoint is still given up at the call timeout.
func TestLongPollOutlastsTheTimeouts(t *testing.T) {
	const wait = time.Second
	srv, n := endpoint(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(wait): // a long poll that finds a message after a while
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = io.WriteString(w, `{"Messages":[{"MessageId":"m1","ReceiptHandle":"r1","Body":"{}"}]}`)
	})
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	m := NewMetrics(prometheus.NewRegistry())
	cfg, err := Load(t.Context(), Options{Region: "us-east-1", EndpointURL: srv.URL,
		AttemptTimeout: 200 * time.Millisecond, CallTimeout: 400 * time.Millisecond}, m)
	require.NoError(t, err)
	client := SQS(cfg)
	queue := aws.String(srv.URL + "/123456789012/ecs-sd-events")

	start := time.Now()
	out, err := client.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: queue, WaitTimeSeconds: 20, MaxNumberOfMessages: 10})
	require.NoError(t, err)
	require.Len(t, out.Messages, 1)
	require.GreaterOrEqual(t, time.Since(start), wait)
	require.Equal(t, int32(1), n.Load(), "one attempt")
	require.Equal(t, 1.0, testutil.ToFloat64(m.Calls().WithLabelValues("SQS", "ReceiveMessage", "success")))

	_, err = client.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{QueueUrl: queue})
	var timeout *TimeoutError
	require.ErrorAs(t, err, &timeout)
	require.Equal(t, 400*time.Millisecond, timeout.Limit)
}
