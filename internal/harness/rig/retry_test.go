package rig

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/servicediscovery"
	"github.com/stretchr/testify/require"
)

// TestFixtureConfigWritesOnce: against a server that answers every request with a 500 (after
// which AWS clients retry), a fixture client asks once for a write and several times for a read;
// a write whose connection cannot be made is retried.
func TestFixtureConfigWritesOnce(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	attempts := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
		mu.Lock()
		attempts[op]++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"__type":"InternalFailure","message":"boom"}`))
	}))
	t.Cleanup(srv.Close)

	client := fixtureClient(t, srv.URL)
	_, err := client.RegisterInstance(t.Context(), &servicediscovery.RegisterInstanceInput{
		ServiceId: aws.String("srv-1"), InstanceId: aws.String("task-1"), Attributes: map[string]string{"AWS_INSTANCE_IPV4": "10.0.0.1"},
	})
	require.ErrorContains(t, err, "RegisterInstance is not retried")
	_, err = client.ListNamespaces(t.Context(), &servicediscovery.ListNamespacesInput{})
	var maxAttempts *retry.MaxAttemptsError
	require.ErrorAs(t, err, &maxAttempts)
	mu.Lock()
	require.Equal(t, map[string]int{"RegisterInstance": 1, "ListNamespaces": 3}, attempts)
	mu.Unlock()

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + closed.Addr().String()
	require.NoError(t, closed.Close())
	_, err = fixtureClient(t, url).DeregisterInstance(t.Context(), &servicediscovery.DeregisterInstanceInput{
		ServiceId: aws.String("srv-1"), InstanceId: aws.String("task-1"),
	})
	require.True(t, errors.As(err, &maxAttempts), "a write that never reached the server is retried: %v", err)
}

func fixtureClient(t *testing.T, url string) *servicediscovery.Client {
	t.Helper()
	cfg, err := FixtureConfig(t.Context(), url)
	require.NoError(t, err)
	return servicediscovery.NewFromConfig(cfg)
}
