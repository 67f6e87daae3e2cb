//go:build integration

package main

import (
	"encoding/json"
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

// eventModeFixture starts moto with the Cloud Map namespace "apps", its services "web", with
// task1 (10.0.0.1:8080) of ECS service web of cluster apps registered, and "api", with none,
// and an event queue to which EventBridge rules deliver ECS task and Cloud Map events.
func eventModeFixture(t *testing.T) (moto *testenv.Moto, web, api string, q *testenv.EventQueue) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	moto = testenv.StartMoto(t)
	ns := moto.CreateHTTPNamespace(t, "apps")
	web, _ = moto.CreateService(t, ns, "web", nil)
	moto.RegisterTask(t, web, testenv.Task{ID: "task1", IPv4: "10.0.0.1", Port: 8080, Cluster: "apps", Service: "web", Family: "web"})
	api, _ = moto.CreateService(t, ns, "api", nil)
	q = moto.CreateEventQueue(t, "ecs-sd-events", nil, testenv.ECSTaskEventPattern, testenv.CloudMapEventPattern)
	return moto, web, api, q
}

// eventModeServer is ecs-sd run by serveEventMode.
type eventModeServer struct {
	file, addr string
	logs       *testenv.SyncBuffer
}

// serveEventMode runs ecs-sd until the test ends in event mode on queueURL, with only Cloud Map
// enabled (namespace "apps"), AWS at endpoint, and an hour between cycles, so that no cycle runs
// by the clock in a test.
func serveEventMode(t *testing.T, endpoint, queueURL string) *eventModeServer {
	t.Helper()
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := config.Default()
	cfg.AWS.Region, cfg.AWS.EndpointURL = testenv.Region, endpoint
	cfg.Output.Dir = dir
	cfg.Web.ListenAddresses = []string{addr}
	cfg.CloudMap.Namespaces = []string{"apps"}
	cfg.PrometheusConfig.Enabled = false
	cfg.RefreshInterval = model.Duration(time.Hour)
	cfg.Events.QueueURL = queueURL
	require.NoError(t, cfg.Validate())
	require.False(t, cfg.ECS.Enabled())
	return &eventModeServer{file: filepath.Join(dir, "ecs-services.json"), addr: addr, logs: startServe(t, cfg)}
}

// inFile returns a condition for testenv.Eventually: target is in the file_sd file.
func (e *eventModeServer) inFile(target string) func() (bool, string) {
	return func() (bool, string) {
		data, err := os.ReadFile(e.file)
		return err == nil && strings.Contains(string(data), `"`+target+`"`), fmt.Sprintf("%s not in the file: %s %v", target, data, err)
	}
}

// metrics returns what /metrics answers.
func (e *eventModeServer) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + e.addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// TestEventModeRefreshesTheAnnouncedService: with a queue configured and an hour between cycles, a
// Cloud Map registration announced by its CloudTrail event (through a real EventBridge rule on
// moto) is in the file_sd file within seconds, read by one DiscoverInstances of its service: a
// registration in another service made without an event waits for the next cycle, so no
// discovery ran. The message is deleted and counted.
func TestEventModeRefreshesTheAnnouncedService(t *testing.T) {
	moto, service, other, q := eventModeFixture(t)

	e := serveEventMode(t, moto.URL, q.URL)
	inFile, logs := e.inFile, e.logs
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

	metrics := e.metrics(t)
	require.Contains(t, metrics, "ecs_sd_events_applied_total 1\n")
	require.Contains(t, metrics, `ecs_sd_events_received_total{type="cloudmap_instance"} 1`+"\n")
	require.Contains(t, metrics, `ecs_sd_aws_api_calls_total{operation="ReceiveMessage",outcome="success",service="SQS"}`)
	ok, _ = inFile("10.0.0.2:8080")()
	require.False(t, ok, "the event ran no discovery of the other service")
}

// taskStateChange returns an "ECS Task State Change" event as EventBridge writes it to the
// queue, for a RUNNING awsvpc task of ECS service service in cluster.
func taskStateChange(t *testing.T, cluster, service, taskID, ip string) string {
	t.Helper()
	prefix := "arn:aws:ecs:" + testenv.Region + ":123456789012:"
	taskARN := prefix + "task/" + cluster + "/" + taskID
	now := time.Now().UTC()
	iso := func(t time.Time) string { return t.Format("2006-01-02T15:04:05.000Z") }
	event := map[string]any{
		"version": "0", "id": "3317b2af-7005-947d-b652-f55e762e571a", "detail-type": "ECS Task State Change", "source": "aws.ecs",
		"account": "123456789012", "time": now.Format(time.RFC3339), "region": testenv.Region, "resources": []string{taskARN},
		"detail": map[string]any{
			"taskArn": taskARN, "clusterArn": prefix + "cluster/" + cluster, "group": "service:" + service,
			"taskDefinitionArn": prefix + "task-definition/" + service + ":3", "launchType": "FARGATE", "platformVersion": "1.4.0",
			"lastStatus": "RUNNING", "desiredStatus": "RUNNING", "version": 3, "cpu": "256", "memory": "512",
			"createdAt": iso(now.Add(-40 * time.Second)), "startedAt": iso(now.Add(-time.Second)), "updatedAt": iso(now),
			"connectivity": "CONNECTED", "connectivityAt": iso(now.Add(-30 * time.Second)), "availabilityZone": testenv.Region + "a",
			"attachments": []any{map[string]any{"id": "a1b2c3d4-5678-90ab-cdef-11111EXAMPLE", "type": "eni", "status": "ATTACHED", "details": []any{
				map[string]any{"name": "subnetId", "value": "subnet-0123456789abcdef0"},
				map[string]any{"name": "networkInterfaceId", "value": "eni-0123456789abcdef0"},
				map[string]any{"name": "privateIPv4Address", "value": ip},
			}}},
			"containers": []any{map[string]any{
				"containerArn": prefix + "container/" + cluster + "/" + taskID + "/0a1b2c3d", "name": service, "taskArn": taskARN,
				"lastStatus": "RUNNING", "image": service + ":1", "cpu": "0",
				"networkInterfaces": []any{map[string]any{"attachmentId": "a1b2c3d4-5678-90ab-cdef-11111EXAMPLE", "privateIpv4Address": ip}},
			}},
		},
	}
	body, err := json.Marshal(event)
	require.NoError(t, err)
	return string(body)
}

// TestEventModeRereadsTheCloudMapServiceOfATaskEvent: with only Cloud Map enabled, an ECS task
// event of an ECS service whose tasks a Cloud Map service holds reads that service at once and
// once more a few seconds later, without a discovery: a task that ECS registers a second after
// its event is in the file after the later read; a registration in another service, made without
// an event, is not. Exactly two DiscoverInstances, and nothing else of Cloud Map.
func TestEventModeRereadsTheCloudMapServiceOfATaskEvent(t *testing.T) {
	moto, web, api, q := eventModeFixture(t)
	proxy := testenv.NewProxy(t, moto.URL)

	e := serveEventMode(t, proxy.URL, q.URL)
	inFile := e.inFile
	testenv.Eventually(t, 20*time.Second, 20*time.Millisecond, inFile("10.0.0.1:8080"))
	discovers := func(n int) func() (bool, string) {
		return func() (bool, string) {
			calls := proxy.Calls()
			return calls["DiscoverInstances"] == n, fmt.Sprintf("want %d DiscoverInstances, calls: %v", n, calls)
		}
	}
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, discovers(2)) // the first cycle: both services
	proxy.ResetCalls()

	// Registered without an event.
	moto.RegisterTask(t, api, testenv.Task{ID: "task2", IPv4: "10.0.0.2", Port: 8080, Cluster: "apps", Service: "api", Family: "api"})

	// The task's event, then its registration a second after the read at the event.
	start := time.Now()
	q.Send(t, taskStateChange(t, "apps", "web", "task3", "10.0.0.3"))
	testenv.Eventually(t, 10*time.Second, 10*time.Millisecond, discovers(1))
	time.Sleep(time.Second)
	ok, _ := inFile("10.0.0.3:8080")()
	require.False(t, ok, "not registered yet")
	moto.RegisterTask(t, web, testenv.Task{ID: "task3", IPv4: "10.0.0.3", Port: 8080, Cluster: "apps", Service: "web", Family: "web"})
	testenv.Eventually(t, 15*time.Second, 10*time.Millisecond, inFile("10.0.0.3:8080"))
	t.Logf("the task registered after its event was in the file %v after the event was sent", time.Since(start).Round(time.Millisecond))
	q.WaitEmpty(t, 10*time.Second)

	calls := proxy.Calls()
	for op, n := range calls {
		if !strings.HasPrefix(op, "ReceiveMessage") && !strings.HasPrefix(op, "DeleteMessage") && op != "DiscoverInstances" {
			t.Errorf("%d %s calls: the event ran a discovery (%v)", n, op, calls)
		}
	}
	require.Equal(t, 2, calls["DiscoverInstances"], "the read at the event and the one after it: %v", calls)
	ok, _ = inFile("10.0.0.2:8080")()
	require.False(t, ok, "the event ran no discovery of the other service")
	ok, _ = inFile("10.0.0.1:8080")()
	require.True(t, ok)

	metrics := e.metrics(t)
	require.Contains(t, metrics, "ecs_sd_events_applied_total 1\n")
	require.Contains(t, metrics, `ecs_sd_events_received_total{type="ecs_task"} 1`+"\n")
}
