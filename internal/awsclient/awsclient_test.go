package awsclient

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/servicediscovery"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestCloudMapCallsReachTheEndpointAndAreCounted: with a custom endpoint, DiscoverInstances goes
// to that host (no "data-" prefix), and every call is counted by operation and outcome.
func TestCloudMapCallsReachTheEndpointAndAreCounted(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	var mu sync.Mutex
	var targets []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		targets = append(targets, r.Header.Get("X-Amz-Target"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if r.Header.Get("X-Amz-Target") == "Route53AutoNaming_v20170314.ListNamespaces" {
			w.Header().Set("X-Amzn-ErrorType", "AccessDeniedException")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"__type":"AccessDeniedException","message":"no"}`))
			return
		}
		_, _ = w.Write([]byte(`{"Instances":[]}`))
	}))
	defer srv.Close()

	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	cfg, err := Load(context.Background(), Options{Region: "us-east-1", EndpointURL: srv.URL}, m)
	require.NoError(t, err)
	client := CloudMap(cfg)

	ctx, counted := CountCalls(context.Background())
	_, err = client.DiscoverInstances(ctx, &servicediscovery.DiscoverInstancesInput{
		NamespaceName: aws.String("ns"), ServiceName: aws.String("svc"),
	})
	require.NoError(t, err, "DiscoverInstances must reach the custom endpoint itself")
	_, err = client.ListNamespaces(ctx, &servicediscovery.ListNamespacesInput{})
	require.ErrorContains(t, err, "AccessDeniedException")
	require.Equal(t, 2, counted(), "the calls made in the counting context, failed ones too")
	_, _ = client.ListNamespaces(context.Background(), &servicediscovery.ListNamespacesInput{})
	require.Equal(t, 2, counted(), "calls in another context are not counted")

	require.Equal(t, []string{"Route53AutoNaming_v20170314.DiscoverInstances", "Route53AutoNaming_v20170314.ListNamespaces", "Route53AutoNaming_v20170314.ListNamespaces"}, targets,
		"AccessDenied is not retried")
	require.Equal(t, 1.0, testutil.ToFloat64(m.Calls().WithLabelValues("ServiceDiscovery", "DiscoverInstances", "success")))
	require.Equal(t, 2.0, testutil.ToFloat64(m.Calls().WithLabelValues("ServiceDiscovery", "ListNamespaces", "error")))
}

func TestLoadNeedsARegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	_, err := Load(context.Background(), Options{}, nil)
	require.ErrorContains(t, err, "no aws region")
}

// TestServiceEndpointVariables: without an endpoint of ecs-sd's own, the SDK's endpoint variables
// apply as the SDK documents them: AWS_ENDPOINT_URL_SQS wins over AWS_ENDPOINT_URL for SQS only.
func TestServiceEndpointVariables(t *testing.T) {
	hits := func() (*httptest.Server, *atomic.Int32) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			_, _ = io.WriteString(w, `{}`)
		}))
		t.Cleanup(srv.Close)
		return srv, &n
	}
	all, allHits := hits()
	queue, queueHits := hits()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_ENDPOINT_URL", all.URL)
	t.Setenv("AWS_ENDPOINT_URL_SQS", queue.URL)
	cfg, err := Load(context.Background(), Options{Region: "us-east-1"}, nil)
	require.NoError(t, err)

	_, err = SQS(cfg).ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue.URL + "/q")})
	require.NoError(t, err)
	_, err = CloudMap(cfg).ListNamespaces(context.Background(), &servicediscovery.ListNamespacesInput{})
	require.NoError(t, err)
	require.Equal(t, int32(1), queueHits.Load(), "SQS call to AWS_ENDPOINT_URL_SQS")
	require.Equal(t, int32(1), allHits.Load(), "Cloud Map call to AWS_ENDPOINT_URL")
}
