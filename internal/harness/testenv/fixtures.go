package testenv

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicediscovery"
	sdtypes "github.com/aws/aws-sdk-go-v2/service/servicediscovery/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"golang.org/x/sync/errgroup"

	"github.com/ecs-sd/ecs-sd/internal/harness/rig"
)

// registerWorkers is how many registrations RegisterTasks runs at once.
const registerWorkers = 8

// Cloud Map instance attributes that ECS sets when it registers a task.
const (
	AttrIPv4             = rig.AttrIPv4
	AttrIPv6             = rig.AttrIPv6
	AttrPort             = rig.AttrPort
	AttrAvailabilityZone = rig.AttrAvailabilityZone
	AttrInitHealthStatus = rig.AttrInitHealthStatus
	AttrCluster          = rig.AttrCluster
	AttrService          = rig.AttrService
	AttrFamily           = rig.AttrFamily
	AttrRegion           = rig.AttrRegion
	AttrEC2InstanceID    = rig.AttrEC2InstanceID
)

// CreateVPC creates a VPC 10.0.0.0/16 with DNS support and DNS hostnames on, and returns its id.
// moto allows one private DNS namespace per VPC.
func (m *Moto) CreateVPC(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	id, err := createVPC(ctx, m.fixtureClients(tb).ec2)
	check(tb, err)
	return id
}

func createVPC(ctx context.Context, client *ec2.Client) (string, error) {
	out, err := client.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16")})
	if err != nil {
		return "", fmt.Errorf("create vpc: %w", err)
	}
	id := aws.ToString(out.Vpc.VpcId)
	on := &ec2types.AttributeBooleanValue{Value: aws.Bool(true)}
	// EC2 takes one attribute per ModifyVpcAttribute call.
	for _, in := range []*ec2.ModifyVpcAttributeInput{
		{VpcId: &id, EnableDnsSupport: on},
		{VpcId: &id, EnableDnsHostnames: on},
	} {
		if _, err := client.ModifyVpcAttribute(ctx, in); err != nil {
			return "", fmt.Errorf("modify vpc %s: %w", id, err)
		}
	}
	return id, nil
}

// CreatePrivateDNSNamespace creates a private DNS namespace in vpcID and returns its id. With an
// empty vpcID it creates a VPC for it first: moto refuses a second private namespace in a VPC that
// already has one (ConflictingDomainExists), whatever its name.
func (m *Moto) CreatePrivateDNSNamespace(tb testing.TB, name, vpcID string) string {
	tb.Helper()
	if vpcID == "" {
		vpcID = m.CreateVPC(tb)
	}
	return m.createNamespace(tb, name, func(ctx context.Context, c *servicediscovery.Client) (*string, error) {
		out, err := c.CreatePrivateDnsNamespace(ctx, &servicediscovery.CreatePrivateDnsNamespaceInput{
			Name: &name, Vpc: &vpcID,
		})
		if err != nil {
			return nil, err
		}
		return out.OperationId, nil
	})
}

// CreatePublicDNSNamespace creates a public DNS namespace and returns its id.
func (m *Moto) CreatePublicDNSNamespace(tb testing.TB, name string) string {
	tb.Helper()
	return m.createNamespace(tb, name, func(ctx context.Context, c *servicediscovery.Client) (*string, error) {
		out, err := c.CreatePublicDnsNamespace(ctx, &servicediscovery.CreatePublicDnsNamespaceInput{Name: &name})
		if err != nil {
			return nil, err
		}
		return out.OperationId, nil
	})
}

// CreateHTTPNamespace creates an HTTP (API-only) namespace and returns its id.
func (m *Moto) CreateHTTPNamespace(tb testing.TB, name string) string {
	tb.Helper()
	return m.createNamespace(tb, name, func(ctx context.Context, c *servicediscovery.Client) (*string, error) {
		out, err := c.CreateHttpNamespace(ctx, &servicediscovery.CreateHttpNamespaceInput{Name: &name})
		if err != nil {
			return nil, err
		}
		return out.OperationId, nil
	})
}

// createNamespace runs create, which returns an operation id, and returns the namespace id the
// operation reports.
func (m *Moto) createNamespace(tb testing.TB, name string,
	create func(context.Context, *servicediscovery.Client) (*string, error),
) string {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	client := m.fixtureClients(tb).cloudMap
	opID, err := create(ctx, client)
	if err != nil {
		tb.Fatalf("create namespace %q: %v", name, err)
	}
	id, err := operationTarget(ctx, client, aws.ToString(opID), sdtypes.OperationTargetTypeNamespace)
	if err != nil {
		tb.Fatalf("create namespace %q: %v", name, err)
	}
	return id
}

// operationTarget waits for a Cloud Map operation to succeed and returns its target of type typ.
// moto completes operations at once; AWS takes seconds.
func operationTarget(ctx context.Context, client *servicediscovery.Client, opID string,
	typ sdtypes.OperationTargetType,
) (string, error) {
	for {
		out, err := client.GetOperation(ctx, &servicediscovery.GetOperationInput{OperationId: &opID})
		if err != nil {
			return "", fmt.Errorf("get operation %s: %w", opID, err)
		}
		switch op := out.Operation; op.Status {
		case sdtypes.OperationStatusSuccess:
			id, ok := op.Targets[string(typ)]
			if !ok {
				return "", fmt.Errorf("operation %s has no %s target: %v", opID, typ, op.Targets)
			}
			return id, nil
		case sdtypes.OperationStatusFail:
			return "", fmt.Errorf("operation %s failed: %s: %s", opID,
				aws.ToString(op.ErrorCode), aws.ToString(op.ErrorMessage))
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for operation %s: %w", opID, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// DeleteNamespace deletes a namespace. moto deletes it even when it still has services, and keeps
// those services (ListServices and GetService still return them).
func (m *Moto) DeleteNamespace(tb testing.TB, id string) {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	_, err := m.fixtureClients(tb).cloudMap.DeleteNamespace(ctx, &servicediscovery.DeleteNamespaceInput{Id: &id})
	if err != nil {
		tb.Fatalf("delete namespace %s: %v", id, err)
	}
}

// CreateService creates a Cloud Map service in a namespace the way ECS service registries are
// made, with tags, and returns its id and ARN: custom health checking and, in
// a DNS namespace, weighted A records with TTL 10.
func (m *Moto) CreateService(tb testing.TB, namespaceID, name string, tags map[string]string) (id, arn string) {
	tb.Helper()
	in := &servicediscovery.CreateServiceInput{
		Name:                    &name,
		NamespaceId:             &namespaceID,
		HealthCheckCustomConfig: &sdtypes.HealthCheckCustomConfig{},
		Tags:                    cloudMapTags(tags),
	}
	if m.namespaceType(tb, namespaceID) != sdtypes.NamespaceTypeHttp {
		in.DnsConfig = &sdtypes.DnsConfig{
			RoutingPolicy: sdtypes.RoutingPolicyWeighted,
			DnsRecords:    []sdtypes.DnsRecord{{Type: sdtypes.RecordTypeA, TTL: aws.Int64(10)}},
		}
	}
	return m.CreateServiceFrom(tb, in)
}

// CreateServiceFrom creates a Cloud Map service from a raw input (for services that ECS would not
// make, such as one without any health check) and returns its id and ARN.
func (m *Moto) CreateServiceFrom(tb testing.TB, in *servicediscovery.CreateServiceInput) (id, arn string) {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	out, err := m.fixtureClients(tb).cloudMap.CreateService(ctx, in)
	if err != nil {
		tb.Fatalf("create service %q: %v", aws.ToString(in.Name), err)
	}
	return aws.ToString(out.Service.Id), aws.ToString(out.Service.Arn)
}

// namespaceType returns the type of a namespace.
func (m *Moto) namespaceType(tb testing.TB, namespaceID string) sdtypes.NamespaceType {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	out, err := m.fixtureClients(tb).cloudMap.GetNamespace(ctx, &servicediscovery.GetNamespaceInput{Id: &namespaceID})
	if err != nil {
		tb.Fatalf("get namespace %s: %v", namespaceID, err)
	}
	return out.Namespace.Type
}

// cloudMapTags converts a tag map to Cloud Map tags, sorted by key.
func cloudMapTags(tags map[string]string) []sdtypes.Tag {
	out := make([]sdtypes.Tag, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		out = append(out, sdtypes.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	return out
}

// DeleteService deletes a Cloud Map service. moto deletes it even when instances remain.
func (m *Moto) DeleteService(tb testing.TB, id string) {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	_, err := m.fixtureClients(tb).cloudMap.DeleteService(ctx, &servicediscovery.DeleteServiceInput{Id: &id})
	if err != nil {
		tb.Fatalf("delete service %s: %v", id, err)
	}
}

// Task is an ECS task as ECS registers it in Cloud Map (see rig.Task).
type Task = rig.Task

// RegisterTask registers task as an instance of a Cloud Map service (instance id = task id).
// On moto, registering an id that is already registered adds a duplicate instead of replacing it.
func (m *Moto) RegisterTask(tb testing.TB, serviceID string, task Task) {
	tb.Helper()
	m.RegisterTasks(tb, serviceID, []Task{task})
}

// RegisterTasks registers many tasks, 8 at a time (moto takes about 350 registrations/s).
func (m *Moto) RegisterTasks(tb testing.TB, serviceID string, tasks []Task) {
	tb.Helper()
	client := m.fixtureClients(tb).cloudMap
	g, ctx := errgroup.WithContext(tb.Context())
	g.SetLimit(registerWorkers)
	for _, task := range tasks {
		g.Go(func() error { return registerTask(ctx, client, serviceID, task) })
	}
	check(tb, g.Wait())
}

func registerTask(ctx context.Context, client *servicediscovery.Client, serviceID string, task Task) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return rig.RegisterTask(ctx, client, serviceID, task)
}

// DeregisterTask deregisters the instance of a task (the first one, should moto hold duplicates).
func (m *Moto) DeregisterTask(tb testing.TB, serviceID, taskID string) {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	check(tb, rig.DeregisterTask(ctx, m.fixtureClients(tb).cloudMap, serviceID, taskID))
}

// SetHealth sets a task instance's custom health status (UpdateInstanceCustomHealthStatus).
//
// What moto 5.2.1 does: every instance starts HEALTHY, whether or not its service has a health
// check (AWS reports UNKNOWN without one). The custom status is stored on the instance and is then
// what both GetInstancesHealthStatus and DiscoverInstances report (HealthStatus of each instance);
// DiscoverInstances' HealthStatus filter honours it (HEALTHY leaves UNHEALTHY instances out,
// HEALTHY_OR_ELSE_ALL returns all of them when none is healthy). moto accepts the update even for a
// service without HealthCheckCustomConfig (AWS answers CustomHealthNotFound), and it does not
// change InstancesRevision (as on AWS). On moto the status applies to the first instance with the
// id only.
func (m *Moto) SetHealth(tb testing.TB, serviceID, taskID string, healthy bool) {
	tb.Helper()
	status := sdtypes.CustomHealthStatusUnhealthy
	if healthy {
		status = sdtypes.CustomHealthStatusHealthy
	}
	ctx, cancel := callContext(tb)
	defer cancel()
	_, err := m.fixtureClients(tb).cloudMap.UpdateInstanceCustomHealthStatus(ctx,
		&servicediscovery.UpdateInstanceCustomHealthStatusInput{
			ServiceId: &serviceID, InstanceId: &taskID, Status: status,
		})
	if err != nil {
		tb.Fatalf("set health of task %s in service %s: %v", taskID, serviceID, err)
	}
}

// PutParameter writes an SSM parameter, overwriting any previous value.
func (m *Moto) PutParameter(tb testing.TB, name, value string, typ ssmtypes.ParameterType) {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	_, err := m.fixtureClients(tb).ssm.PutParameter(ctx, &ssm.PutParameterInput{
		Name: &name, Value: &value, Type: typ, Overwrite: aws.Bool(true),
	})
	if err != nil {
		tb.Fatalf("put parameter %s: %v", name, err)
	}
}

// DeleteParameter deletes an SSM parameter.
func (m *Moto) DeleteParameter(tb testing.TB, name string) {
	tb.Helper()
	ctx, cancel := callContext(tb)
	defer cancel()
	if _, err := m.fixtureClients(tb).ssm.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: &name}); err != nil {
		tb.Fatalf("delete parameter %s: %v", name, err)
	}
}
