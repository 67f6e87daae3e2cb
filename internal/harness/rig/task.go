package rig

import (
	"context"
	"fmt"
	"maps"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/servicediscovery"
)

// Cloud Map instance attributes that ECS sets when it registers a task.
const (
	AttrIPv4             = "AWS_INSTANCE_IPV4"
	AttrIPv6             = "AWS_INSTANCE_IPV6"
	AttrPort             = "AWS_INSTANCE_PORT"
	AttrAvailabilityZone = "AVAILABILITY_ZONE"
	AttrInitHealthStatus = "AWS_INIT_HEALTH_STATUS"
	AttrCluster          = "ECS_CLUSTER_NAME"
	AttrService          = "ECS_SERVICE_NAME"
	AttrFamily           = "ECS_TASK_DEFINITION_FAMILY"
	AttrRegion           = "REGION"
	AttrEC2InstanceID    = "EC2_INSTANCE_ID"
)

// Task is an ECS task as ECS registers it in Cloud Map. Empty fields (and Port 0) are left out of
// the instance's attributes, so a task without any IP can be registered.
type Task struct {
	ID            string // the task id, used as the Cloud Map instance id
	IPv4          string
	IPv6          string
	Port          int
	Cluster       string
	Service       string
	Family        string
	AZ            string
	EC2InstanceID string
	// Extra attributes are added last and override the ones above.
	Extra map[string]string
}

// Attributes returns the Cloud Map instance attributes ECS would set for t: AWS_INSTANCE_IPV4,
// AWS_INSTANCE_IPV6, AWS_INSTANCE_PORT, AVAILABILITY_ZONE, ECS_CLUSTER_NAME, ECS_SERVICE_NAME,
// ECS_TASK_DEFINITION_FAMILY and EC2_INSTANCE_ID when set, AWS_INIT_HEALTH_STATUS=HEALTHY and
// REGION=us-east-1 always, then Extra.
func (t Task) Attributes() map[string]string {
	attrs := map[string]string{
		AttrInitHealthStatus: "HEALTHY",
		AttrRegion:           Region,
	}
	optional := map[string]string{
		AttrIPv4:             t.IPv4,
		AttrIPv6:             t.IPv6,
		AttrAvailabilityZone: t.AZ,
		AttrCluster:          t.Cluster,
		AttrService:          t.Service,
		AttrFamily:           t.Family,
		AttrEC2InstanceID:    t.EC2InstanceID,
	}
	if t.Port != 0 {
		optional[AttrPort] = strconv.Itoa(t.Port)
	}
	for k, v := range optional {
		if v != "" {
			attrs[k] = v
		}
	}
	maps.Copy(attrs, t.Extra)
	return attrs
}

// RegisterTask registers task as an instance of the Cloud Map service serviceID (instance id =
// task id), as ECS does when a task of a service with service registries starts. On moto,
// registering an id that is already registered adds a duplicate instead of replacing it.
func RegisterTask(ctx context.Context, client *servicediscovery.Client, serviceID string, task Task) error {
	_, err := client.RegisterInstance(ctx, &servicediscovery.RegisterInstanceInput{
		ServiceId:  &serviceID,
		InstanceId: &task.ID,
		Attributes: task.Attributes(),
	})
	if err != nil {
		return fmt.Errorf("register task %s in service %s: %w", task.ID, serviceID, err)
	}
	return nil
}

// DeregisterTask deregisters the instance of a task (on moto, the first one with the id), as ECS
// does when the task stops.
func DeregisterTask(ctx context.Context, client *servicediscovery.Client, serviceID, taskID string) error {
	_, err := client.DeregisterInstance(ctx, &servicediscovery.DeregisterInstanceInput{
		ServiceId: &serviceID, InstanceId: &taskID,
	})
	if err != nil {
		return fmt.Errorf("deregister task %s from service %s: %w", taskID, serviceID, err)
	}
	return nil
}
