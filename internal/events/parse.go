package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/ecs-sd/ecs-sd/internal/refresh"
)

// Event types: the type label of ecs_sd_events_received_total.
const (
	// TypeTask is an "ECS Task State Change" event of source aws.ecs.
	TypeTask = "ecs_task"
	// TypeCloudMap is a Cloud Map RegisterInstance or DeregisterInstance call, delivered by
	// CloudTrail as "AWS API Call via CloudTrail" of source aws.servicediscovery.
	TypeCloudMap = "cloudmap_instance"
	// TypeOther is anything else: an envelope that cannot be read, or an event of another kind.
	TypeOther = "other"
)

// Reasons an event is not applied: the reason label of ecs_sd_events_ignored_total.
const (
	ReasonMalformed         = "malformed"           // not an EventBridge envelope, or a detail ecs-sd cannot read
	ReasonUnknownSource     = "unknown_source"      // a source other than aws.ecs and aws.servicediscovery
	ReasonUnknownDetailType = "unknown_detail_type" // another event of those sources (ECS Service Action, ...)
	ReasonUnknownOperation  = "unknown_operation"   // a Cloud Map call other than RegisterInstance and DeregisterInstance
	ReasonFailedCall        = "failed_call"         // a Cloud Map call that failed (errorCode set): it changed nothing
	ReasonStale             = "stale"               // a task event no newer than one already applied
	ReasonUnknownPair       = "unknown_pair"        // an event of an account and region ecs-sd does not discover in
)

// reasons lists every reason, for the metric's series at 0.
var reasons = []string{ReasonMalformed, ReasonUnknownSource, ReasonUnknownDetailType, ReasonUnknownOperation, ReasonFailedCall, ReasonStale, ReasonUnknownPair}

// What EventBridge writes into the envelope of the events ecs-sd uses.
const (
	sourceECS            = "aws.ecs"
	sourceCloudMap       = "aws.servicediscovery"
	detailTypeTask       = "ECS Task State Change"
	detailTypeCloudTrail = "AWS API Call via CloudTrail"
	// In a task state change event an awsvpc task's network interface is an attachment of type
	// "eni"; DescribeTasks calls the same attachment "ElasticNetworkInterface".
	attachmentENIEvent    = "eni"
	attachmentENIDescribe = "ElasticNetworkInterface"
)

// Cloud Map operations whose CloudTrail events ecs-sd applies.
const (
	OpRegisterInstance   = "RegisterInstance"
	OpDeregisterInstance = "DeregisterInstance"
)

// Event is one event ecs-sd uses, read from the EventBridge envelope that is an SQS message's body.
type Event struct {
	ID   string    // the envelope's id
	Type string    // TypeTask or TypeCloudMap
	Time time.Time // the envelope's time: when the change happened (zero if absent)
	// Pair is the account and region of the change, the envelope's "account" and "region"
	// (empty when absent).
	Pair refresh.Pair
	// Task is the task of a TypeTask event, as DescribeTasks would return it (see ParseTask).
	Task ecstypes.Task
	// CloudMap is the call of a TypeCloudMap event.
	CloudMap CloudMapChange
}

// CloudMapChange is a successful RegisterInstance or DeregisterInstance call.
type CloudMapChange struct {
	Operation  string // OpRegisterInstance or OpDeregisterInstance
	ServiceID  string
	InstanceID string
}

// IgnoredError says why an event is not applied. Reason is one of the Reason constants.
type IgnoredError struct {
	Reason string
	Err    error
}

func (e *IgnoredError) Error() string { return e.Reason + ": " + e.Err.Error() }

func (e *IgnoredError) Unwrap() error { return e.Err }

func ignored(reason, format string, args ...any) *IgnoredError {
	return &IgnoredError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// envelope is the part ecs-sd reads of an EventBridge event as EventBridge writes it to an SQS
// queue ("version" and "resources" are not needed).
type envelope struct {
	ID         string          `json:"id"`
	Account    string          `json:"account"`
	Region     string          `json:"region"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Time       string          `json:"time"`
	Detail     json.RawMessage `json:"detail"`
}

// cloudTrailDetail is the part of a CloudTrail record ecs-sd reads.
type cloudTrailDetail struct {
	EventSource       string `json:"eventSource"`
	EventName         string `json:"eventName"`
	ErrorCode         string `json:"errorCode"`
	RequestParameters *struct {
		ServiceID  string `json:"serviceId"`
		InstanceID string `json:"instanceId"`
	} `json:"requestParameters"`
}

// Parse reads an EventBridge envelope. It returns the event, or an *IgnoredError saying why it is
// not one ecs-sd applies; the returned Event's Type (TypeOther when the kind is unknown) and ID
// are set in both cases.
func Parse(body []byte) (Event, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Event{Type: TypeOther}, ignored(ReasonMalformed, "not an EventBridge envelope: %w", err)
	}
	ev := Event{ID: env.ID, Type: TypeOther, Pair: refresh.Pair{Account: env.Account, Region: env.Region}}
	if t, err := time.Parse(time.RFC3339, env.Time); err == nil {
		ev.Time = t
	}
	switch {
	case env.Source == "" || env.DetailType == "":
		return ev, ignored(ReasonMalformed, "not an EventBridge envelope: no source or detail-type")
	case env.Source == sourceECS && env.DetailType == detailTypeTask:
		ev.Type = TypeTask
	case env.Source == sourceCloudMap && env.DetailType == detailTypeCloudTrail:
		ev.Type = TypeCloudMap
	case env.Source != sourceECS && env.Source != sourceCloudMap:
		return ev, ignored(ReasonUnknownSource, "source %q", env.Source)
	default:
		return ev, ignored(ReasonUnknownDetailType, "detail-type %q of source %q", env.DetailType, env.Source)
	}
	if !isObject(env.Detail) {
		return ev, ignored(ReasonMalformed, "%s: detail is not an object", env.DetailType)
	}
	var err error
	if ev.Type == TypeTask {
		ev.Task, err = ParseTask(env.Detail)
	} else {
		ev.CloudMap, err = parseCloudMap(env.Detail)
	}
	return ev, err
}

// ParseTask reads the detail of an "ECS Task State Change" event: the task as DescribeTasks
// returns it, but with ISO-8601 (RFC 3339) times, and an awsvpc task's network-interface
// attachment of type "eni" where DescribeTasks says "ElasticNetworkInterface" (the attachment is
// given DescribeTasks's type, so that targets are built from either alike). Fields the SDK's
// ecstypes.Task does not have are ignored.
//
// The detail is decoded into the SDK's own types: their field names are the API's member names
// (taskArn is TaskArn, privateIpv4Address is PrivateIpv4Address, bindIP is BindIP), which
// encoding/json matches without regard to case, and their times decode from RFC 3339 strings.
// A value of the wrong JSON type, or a time that is not RFC 3339, makes the event malformed; so
// does a task without taskArn, clusterArn or version (events cannot be ordered without it).
func ParseTask(detail []byte) (ecstypes.Task, error) {
	var task ecstypes.Task
	if err := json.Unmarshal(detail, &task); err != nil {
		return ecstypes.Task{}, ignored(ReasonMalformed, "%s detail: %w", detailTypeTask, err)
	}
	switch {
	case aws.ToString(task.TaskArn) == "":
		return ecstypes.Task{}, ignored(ReasonMalformed, "%s detail: no taskArn", detailTypeTask)
	case aws.ToString(task.ClusterArn) == "":
		return ecstypes.Task{}, ignored(ReasonMalformed, "%s detail of task %s: no clusterArn", detailTypeTask, aws.ToString(task.TaskArn))
	case task.Version < 1:
		return ecstypes.Task{}, ignored(ReasonMalformed, "%s detail of task %s: no version", detailTypeTask, aws.ToString(task.TaskArn))
	}
	for i, a := range task.Attachments {
		if strings.EqualFold(aws.ToString(a.Type), attachmentENIEvent) {
			task.Attachments[i].Type = aws.String(attachmentENIDescribe)
		}
	}
	return task, nil
}

// parseCloudMap reads the CloudTrail record of a Cloud Map call.
func parseCloudMap(detail []byte) (CloudMapChange, error) {
	var d cloudTrailDetail
	if err := json.Unmarshal(detail, &d); err != nil {
		return CloudMapChange{}, ignored(ReasonMalformed, "%s detail: %w", detailTypeCloudTrail, err)
	}
	switch {
	case d.EventName != OpRegisterInstance && d.EventName != OpDeregisterInstance:
		return CloudMapChange{}, ignored(ReasonUnknownOperation, "Cloud Map call %q", d.EventName)
	case d.ErrorCode != "":
		return CloudMapChange{}, ignored(ReasonFailedCall, "Cloud Map %s failed with %s", d.EventName, d.ErrorCode)
	case d.RequestParameters == nil || d.RequestParameters.ServiceID == "":
		return CloudMapChange{}, ignored(ReasonMalformed, "Cloud Map %s: no requestParameters.serviceId", d.EventName)
	}
	return CloudMapChange{Operation: d.EventName, ServiceID: d.RequestParameters.ServiceID, InstanceID: d.RequestParameters.InstanceID}, nil
}

// isObject reports whether raw is a JSON object.
func isObject(raw json.RawMessage) bool {
	s := strings.TrimLeft(string(raw), " \t\r\n")
	return strings.HasPrefix(s, "{")
}
