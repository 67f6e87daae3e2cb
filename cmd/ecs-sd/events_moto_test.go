//go:build integration

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/ecs-sd/ecs-sd/internal/config"
	"github.com/ecs-sd/ecs-sd/internal/events"
	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// TestEventModeRefreshesTheAnnouncedService: with a queue configured and an hour between cycles, a
// Cloud Map registration announced by its CloudTrail event (through a real EventBridge rule on
// moto) is in the file_sd file within seconds, read by one DiscoverInstances of its service: a
// registration in another service made without an event waits for the next cycle, so no
// discovery ran. The message is deleted and counted.
func TestEventModeRefreshesTheAnnouncedService(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	moto := testenv.StartMoto(t)
	ns := moto.CreateHTTPNamespace(t, "apps")
	service, _ := moto.CreateService(t, ns, "web", nil)
	moto.RegisterTask(t, service, testenv.Task{ID: "task1", IPv4: "10.0.0.1", Port: 8080, Cluster: "apps", Service: "web", Family: "web"})
	other, _ := moto.CreateService(t, ns, "api", nil)
	q := moto.CreateEventQueue(t, "ecs-sd-events", nil, testenv.ECSTaskEventPattern, testenv.CloudMapEventPattern)

	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := config.Default()
	cfg.AWS.Region, cfg.AWS.EndpointURL = testenv.Region, moto.URL
	cfg.Output.Dir = dir
	cfg.Web.ListenAddresses = []string{addr}
	cfg.CloudMap.Namespaces = []string{"apps"}
	cfg.PrometheusConfig.Enabled = false
	cfg.RefreshInterval = model.Duration(time.Hour) // no cycle by the clock in this test
	cfg.Events.QueueURL = q.URL
	require.NoError(t, cfg.Validate())

	logs := startServe(t, cfg)
	file := filepath.Join(dir, "ecs-services.json")
	inFile := func(target string) func() (bool, string) {
		return func() (bool, string) {
			data, err := os.ReadFile(file)
			return err == nil && strings.Contains(string(data), `"`+target+`"`), fmt.Sprintf("%s not in the file: %s %v", target, data, err)
		}
	}
	testenv.Eventually(t, 20*time.Second, 20*time.Millisecond, inFile("10.0.0.1:8080"))
	require.Contains(t, logs.String(), `msg="Event mode: events are applied as they arrive, and every source discovered every refresh interval" component=events queue=`+q.URL)

	// Registered without an event: not discovered before the next cycle.
	moto.RegisterTask(t, other, testenv.Task{ID: "task2", IPv4: "10.0.0.2", Port: 8080, Cluster: "apps", Service: "api", Family: "api"})
	time.Sleep(2 * time.Second)
	ok, _ := inFile("10.0.0.2:8080")()
	require.False(t, ok, "no cycle ran without an event")

	// Registered and announced: its service is read at once, and only it.
	moto.RegisterTask(t, service, testenv.Task{ID: "task3", IPv4: "10.0.0.3", Port: 8080, Cluster: "apps", Service: "web", Family: "web"})
	start := time.Now()
	q.Put(t, testenv.CloudMapCall(t, events.OpRegisterInstance, service, "task3"))
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, inFile("10.0.0.3:8080"))
	t.Logf("the announced registration was in the file %v after its event was put", time.Since(start).Round(time.Millisecond))
	ok, _ = inFile("10.0.0.1:8080")()
	require.True(t, ok)
	q.WaitEmpty(t, 10*time.Second)

	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	metrics, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Contains(t, string(metrics), "ecs_sd_events_applied_total 1\n")
	require.Contains(t, string(metrics), `ecs_sd_events_received_total{type="cloudmap_instance"} 1`+"\n")
	require.Contains(t, string(metrics), `ecs_sd_aws_api_calls_total{operation="ReceiveMessage",outcome="success",service="SQS"}`)
	ok, _ = inFile("10.0.0.2:8080")()
	require.False(t, ok, "the event ran no discovery of the other service")
}
