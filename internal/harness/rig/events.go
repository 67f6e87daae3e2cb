package rig

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
)

// Cloud Map calls that CloudTrail reports and ecs-sd's EventBridge rule routes.
const (
	OpRegisterInstance   = "RegisterInstance"
	OpDeregisterInstance = "DeregisterInstance"
)

// CloudMapCall returns the event CloudTrail delivers to EventBridge for a successful Cloud Map
// call (op RegisterInstance or DeregisterInstance) that ECS made on instance instanceID of service
// serviceID: source aws.servicediscovery, detail-type "AWS API Call via CloudTrail".
func CloudMapCall(op, serviceID, instanceID string) (ebtypes.PutEventsRequestEntry, error) {
	detail, err := json.Marshal(map[string]any{
		"eventVersion": "1.09", "eventSource": "servicediscovery.amazonaws.com", "eventName": op,
		"awsRegion": Region, "userIdentity": map[string]any{"type": "AssumedRole", "invokedBy": "ecs.amazonaws.com"},
		"requestParameters": map[string]any{"serviceId": serviceID, "instanceId": instanceID},
		"eventType":         "AwsApiCall", "readOnly": false, "eventTime": time.Now().UTC().Format(time.RFC3339),
	})
	if err != nil {
		return ebtypes.PutEventsRequestEntry{}, fmt.Errorf("encode %s event: %w", op, err)
	}
	return ebtypes.PutEventsRequestEntry{
		Source: aws.String("aws.servicediscovery"), DetailType: aws.String("AWS API Call via CloudTrail"), Detail: aws.String(string(detail)),
	}, nil
}

// PutEvents publishes entries on the default event bus, as AWS services do, and fails when
// EventBridge refuses any of them.
func PutEvents(ctx context.Context, client *eventbridge.Client, entries ...ebtypes.PutEventsRequestEntry) error {
	out, err := client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: entries})
	if err != nil {
		return fmt.Errorf("put events: %w", err)
	}
	if out.FailedEntryCount != 0 {
		for _, e := range out.Entries {
			if e.ErrorCode != nil {
				return fmt.Errorf("put events: %d of %d failed, e.g. %s: %s", out.FailedEntryCount, len(entries), aws.ToString(e.ErrorCode), aws.ToString(e.ErrorMessage))
			}
		}
		return fmt.Errorf("put events: %d of %d failed", out.FailedEntryCount, len(entries))
	}
	return nil
}
