package rig

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/servicediscovery"
	sdtypes "github.com/aws/aws-sdk-go-v2/service/servicediscovery/types"
	"github.com/aws/smithy-go"
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
	register := func() error {
		_, err := client.RegisterInstance(ctx, &servicediscovery.RegisterInstanceInput{
			ServiceId:  &serviceID,
			InstanceId: &task.ID,
			Attributes: task.Attributes(),
		})
		return err
	}
	registered := func() (bool, error) { return instanceExists(ctx, client, serviceID, task.ID) }
	if err := writeOnce(ctx, register, registered); err != nil {
		return fmt.Errorf("register task %s in service %s: %w", task.ID, serviceID, err)
	}
	return nil
}

// DeregisterTask deregisters the instance of a task (on moto, the first one with the id), as ECS
// does when the task stops.
func DeregisterTask(ctx context.Context, client *servicediscovery.Client, serviceID, taskID string) error {
	deregister := func() error {
		_, err := client.DeregisterInstance(ctx, &servicediscovery.DeregisterInstanceInput{
			ServiceId: &serviceID, InstanceId: &taskID,
		})
		return err
	}
	deregistered := func() (bool, error) {
		found, err := instanceExists(ctx, client, serviceID, taskID)
		return !found, err
	}
	if err := writeOnce(ctx, deregister, deregistered); err != nil {
		return fmt.Errorf("deregister task %s from service %s: %w", taskID, serviceID, err)
	}
	return nil
}

// writeOnce makes a write whose answer may be lost on the way back (the connection closed while
// the body was read) without doing it twice: when write fails without an AWS error, done reports
// whether moto carried it out all the same, and write is tried again only if it did not. The
// fixture clients never retry writes themselves (see FixtureConfig), because moto does not take a
// repeated write as AWS does.
func writeOnce(ctx context.Context, write func() error, done func() (bool, error)) error {
	err := write()
	for attempt := 1; err != nil && attempt < 3 && answerLost(ctx, err); attempt++ {
		ok, checkErr := done()
		if checkErr != nil {
			return fmt.Errorf("%w (and checking whether it was carried out: %w)", err, checkErr)
		}
		if ok {
			return nil
		}
		err = write()
	}
	return err
}

// answerLost reports whether err is a failure of the exchange rather than an answer of the
// service: no AWS error code, and ctx still live.
func answerLost(ctx context.Context, err error) bool {
	var apiErr smithy.APIError
	return ctx.Err() == nil && !errors.As(err, &apiErr)
}

// instanceExists reports whether the Cloud Map service serviceID holds an instance instanceID.
func instanceExists(ctx context.Context, client *servicediscovery.Client, serviceID, instanceID string) (bool, error) {
	_, err := client.GetInstance(ctx, &servicediscovery.GetInstanceInput{ServiceId: &serviceID, InstanceId: &instanceID})
	var notFound *sdtypes.InstanceNotFound
	if errors.As(err, &notFound) {
		return false, nil
	}
	return err == nil, err
}
