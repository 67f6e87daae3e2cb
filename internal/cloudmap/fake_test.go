package cloudmap

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/aws/aws-sdk-go-v2/aws"
	sd "github.com/aws/aws-sdk-go-v2/service/servicediscovery"
	"github.com/aws/aws-sdk-go-v2/service/servicediscovery/types"

	"github.com/ecs-sd/ecs-sd/internal/harness/hold"
)

// fakeAPI is a small in-memory Cloud Map that pages like AWS (100 per page unless MaxResults
// says less) and can be told to fail an operation for a key (namespace id, service id or name).
type fakeAPI struct {
	mu sync.Mutex
	// ignoreServiceFilter mimics emulators that return every service from ListServices.
	ignoreServiceFilter bool
	namespaces          []types.NamespaceSummary
	services            []fakeService
	instances           map[string][]types.InstanceSummary // service id -> instances
	health              map[string]map[string]types.HealthStatus
	fail                map[string]error // "Operation" or "Operation/key" -> error
	holds               *hold.Calls      // by "Operation/key"
	calls               map[string]int
}

type fakeService struct {
	id, name, nsID string
	tags           map[string]string
	healthCheck    bool
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{instances: map[string][]types.InstanceSummary{}, health: map[string]map[string]types.HealthStatus{},
		fail: map[string]error{}, holds: hold.New(), calls: map[string]int{}}
}

func (f *fakeAPI) addNamespace(id, name string, typ types.NamespaceType) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.namespaces = append(f.namespaces, types.NamespaceSummary{Id: aws.String(id), Name: aws.String(name), Type: typ,
		Properties: &types.NamespaceProperties{HttpProperties: &types.HttpProperties{HttpName: aws.String(name)}}})
}

func (f *fakeAPI) addService(nsID, id, name string, tags map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.services = append(f.services, fakeService{id: id, name: name, nsID: nsID, tags: tags, healthCheck: true})
}

func (f *fakeAPI) removeService(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, s := range f.services {
		if s.id == id {
			f.services = append(f.services[:i], f.services[i+1:]...)
			return
		}
	}
}

func (f *fakeAPI) addInstance(serviceID, id string, attrs map[string]string, health types.HealthStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.instances[serviceID] = append(f.instances[serviceID], types.InstanceSummary{Id: aws.String(id), Attributes: attrs})
	if f.health[serviceID] == nil {
		f.health[serviceID] = map[string]types.HealthStatus{}
	}
	f.health[serviceID][id] = health
}

func (f *fakeAPI) setFail(key string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, key)
		return
	}
	f.fail[key] = err
}

func (f *fakeAPI) callCount(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakeAPI) resetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = map[string]int{}
}

// enter counts a call, holds it when told to (holds), and returns the injected error for op or
// op/key.
func (f *fakeAPI) enter(ctx context.Context, op, key string) error {
	f.mu.Lock()
	f.calls[op]++
	err := f.fail[op]
	if err == nil {
		err = f.fail[op+"/"+key]
	}
	f.mu.Unlock()
	if held := f.holds.Wait(ctx, op+"/"+key); held != nil {
		return held
	}
	return err
}

func page[T any](items []T, token *string, maxResults *int32) ([]T, *string) {
	start := 0
	if token != nil {
		start, _ = strconv.Atoi(*token)
	}
	size := 100
	if maxResults != nil && int(*maxResults) < size {
		size = int(*maxResults)
	}
	end := min(start+size, len(items))
	if end < len(items) {
		return items[start:end], aws.String(strconv.Itoa(end))
	}
	return items[start:end], nil
}

func (f *fakeAPI) ListNamespaces(ctx context.Context, in *sd.ListNamespacesInput, _ ...func(*sd.Options)) (*sd.ListNamespacesOutput, error) {
	if err := f.enter(ctx, "ListNamespaces", ""); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	items, next := page(f.namespaces, in.NextToken, in.MaxResults)
	return &sd.ListNamespacesOutput{Namespaces: items, NextToken: next}, nil
}

func (f *fakeAPI) ListServices(ctx context.Context, in *sd.ListServicesInput, _ ...func(*sd.Options)) (*sd.ListServicesOutput, error) {
	nsID := in.Filters[0].Values[0]
	if err := f.enter(ctx, "ListServices", nsID); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []types.ServiceSummary
	for _, s := range f.services {
		if f.ignoreServiceFilter || s.nsID == nsID {
			all = append(all, types.ServiceSummary{Id: aws.String(s.id), Name: aws.String(s.name), Arn: aws.String("arn:aws:servicediscovery:us-east-1:123456789012:service/" + s.id)})
		}
	}
	items, next := page(all, in.NextToken, in.MaxResults)
	return &sd.ListServicesOutput{Services: items, NextToken: next}, nil
}

func (f *fakeAPI) service(id string) (fakeService, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.services {
		if s.id == id {
			return s, nil
		}
	}
	return fakeService{}, &types.ServiceNotFound{Message: aws.String("service " + id)}
}

func (f *fakeAPI) GetService(ctx context.Context, in *sd.GetServiceInput, _ ...func(*sd.Options)) (*sd.GetServiceOutput, error) {
	if err := f.enter(ctx, "GetService", *in.Id); err != nil {
		return nil, err
	}
	s, err := f.service(*in.Id)
	if err != nil {
		return nil, err
	}
	out := &types.Service{Id: aws.String(s.id), Name: aws.String(s.name), NamespaceId: aws.String(s.nsID)}
	if s.healthCheck {
		out.HealthCheckCustomConfig = &types.HealthCheckCustomConfig{}
	}
	return &sd.GetServiceOutput{Service: out}, nil
}

func (f *fakeAPI) ListTagsForResource(ctx context.Context, in *sd.ListTagsForResourceInput, _ ...func(*sd.Options)) (*sd.ListTagsForResourceOutput, error) {
	id := (*in.ResourceARN)[len("arn:aws:servicediscovery:us-east-1:123456789012:service/"):]
	if err := f.enter(ctx, "ListTagsForResource", id); err != nil {
		return nil, err
	}
	s, err := f.service(id)
	if err != nil {
		return nil, err
	}
	var tags []types.Tag
	for k, v := range s.tags {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return &sd.ListTagsForResourceOutput{Tags: tags}, nil
}

func (f *fakeAPI) serviceByName(nsName, name string) (fakeService, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var nsIDs []string
	for _, n := range f.namespaces {
		if aws.ToString(n.Properties.HttpProperties.HttpName) == nsName {
			nsIDs = append(nsIDs, *n.Id)
		}
	}
	if len(nsIDs) != 1 {
		return fakeService{}, fmt.Errorf("namespace %q matches %d namespaces", nsName, len(nsIDs))
	}
	for _, s := range f.services {
		if s.nsID == nsIDs[0] && s.name == name {
			return s, nil
		}
	}
	return fakeService{}, &types.ServiceNotFound{Message: aws.String(name)}
}

func (f *fakeAPI) DiscoverInstances(ctx context.Context, in *sd.DiscoverInstancesInput, _ ...func(*sd.Options)) (*sd.DiscoverInstancesOutput, error) {
	s, err := f.serviceByName(*in.NamespaceName, *in.ServiceName)
	if err != nil {
		return nil, err
	}
	if err := f.enter(ctx, "DiscoverInstances", s.id); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []types.HttpInstanceSummary
	for _, i := range f.instances[s.id] {
		if len(out) == int(aws.ToInt32(in.MaxResults)) {
			break
		}
		out = append(out, types.HttpInstanceSummary{InstanceId: i.Id, Attributes: i.Attributes, HealthStatus: f.health[s.id][*i.Id]})
	}
	return &sd.DiscoverInstancesOutput{Instances: out}, nil
}

func (f *fakeAPI) ListInstances(ctx context.Context, in *sd.ListInstancesInput, _ ...func(*sd.Options)) (*sd.ListInstancesOutput, error) {
	if err := f.enter(ctx, "ListInstances", *in.ServiceId); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	items, next := page(f.instances[*in.ServiceId], in.NextToken, in.MaxResults)
	return &sd.ListInstancesOutput{Instances: items, NextToken: next}, nil
}

func (f *fakeAPI) GetInstancesHealthStatus(ctx context.Context, in *sd.GetInstancesHealthStatusInput, _ ...func(*sd.Options)) (*sd.GetInstancesHealthStatusOutput, error) {
	if err := f.enter(ctx, "GetInstancesHealthStatus", *in.ServiceId); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.health[*in.ServiceId] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	items, next := page(ids, in.NextToken, in.MaxResults)
	status := map[string]types.HealthStatus{}
	for _, id := range items {
		status[id] = f.health[*in.ServiceId][id]
	}
	return &sd.GetInstancesHealthStatusOutput{Status: status, NextToken: next}, nil
}

var errInjected = errors.New("injected fault")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
