// Package awscheck checks, before ecs-sd is deployed, that its AWS credentials may make every
// read-only call its configuration needs: `ecs-sd check aws`. It calls each IAM action once per
// (account, region) pair, on real resources where the configuration names or finds some, and
// reports each as allowed, denied (with the policy statement to add, as the kit's policies in
// deploy/ grant it) or failed.
//
// Actions is the one table of the IAM actions ecs-sd calls: the check walks it, and deploy's
// tests hold it against the code's AWS calls and against the kit's policies.
package awscheck

import (
	"encoding/json"
	"strings"
)

// Resource is what the kit's policy statement of an action names as its resource.
type Resource int

// The resources of the kit's statements.
const (
	// AnyResource is "*": the action supports no resource-level permission, or (with a condition)
	// is scoped by its condition.
	AnyResource         Resource = iota
	Parameter                    // the SSM parameter
	Cluster                      // the ECS cluster
	Service                      // the Cloud Map service
	NamespaceAndService          // the Cloud Map namespace and service, both required
	Queue                        // the SQS queue
	Role                         // the role to assume
	NoStatement                  // IAM does not authorise the action: no statement grants it
)

// Condition is the condition of the kit's statement of an action.
type Condition struct {
	Operator string // "ArnLike"
	Key      string // "ecs:cluster"
}

// Action is an IAM action that ecs-sd calls, as the kit's policies grant it.
type Action struct {
	Name      string // "ecs:ListTasks"
	Resource  Resource
	Condition Condition // zero: none
	// NoPermission says why IAM does not authorise the action (it answers any valid credentials).
	NoPermission string
	// NotCalled says why the check does not call the action (it changes something).
	NotCalled string
}

// The IAM actions ecs-sd calls.
const (
	AssumeRole                 = "sts:AssumeRole"
	GetCallerIdentity          = "sts:GetCallerIdentity"
	GetParameter               = "ssm:GetParameter"
	ListNamespaces             = "servicediscovery:ListNamespaces"
	ListServices               = "servicediscovery:ListServices"
	GetService                 = "servicediscovery:GetService"
	ListTagsForResource        = "servicediscovery:ListTagsForResource"
	DiscoverInstances          = "servicediscovery:DiscoverInstances"
	ListInstances              = "servicediscovery:ListInstances"
	GetInstancesHealthStatus   = "servicediscovery:GetInstancesHealthStatus"
	ListClusters               = "ecs:ListClusters"
	DescribeClusters           = "ecs:DescribeClusters"
	ListTasks                  = "ecs:ListTasks"
	DescribeTasks              = "ecs:DescribeTasks"
	DescribeTaskDefinition     = "ecs:DescribeTaskDefinition"
	DescribeContainerInstances = "ecs:DescribeContainerInstances"
	DescribeServices           = "ecs:DescribeServices"
	DescribeInstances          = "ec2:DescribeInstances"
	ReceiveMessage             = "sqs:ReceiveMessage"
	DeleteMessage              = "sqs:DeleteMessage"
)

// The resources of the statements whose resource is "*", by why.
const (
	noResourceLevelPermissions  = AnyResource
	scopedByTheClusterCondition = AnyResource
)

// onCluster is the condition of the ECS actions on a cluster's tasks, services and instances.
var onCluster = Condition{Operator: "ArnLike", Key: "ecs:cluster"}

// Actions is every IAM action ecs-sd calls, with the resource and condition of the kit's
// statement that grants it (deploy/iam/*.json, deploy/cloudformation).
var Actions = []Action{
	{Name: AssumeRole, Resource: Role},
	{Name: GetCallerIdentity, Resource: NoStatement, NoPermission: "answers for any valid credentials (ecs-sd reads its own account id)"},
	{Name: GetParameter, Resource: Parameter},
	{Name: ListNamespaces, Resource: noResourceLevelPermissions},
	{Name: ListServices, Resource: noResourceLevelPermissions},
	{Name: ListTagsForResource, Resource: noResourceLevelPermissions},
	{Name: GetService, Resource: Service},
	{Name: ListInstances, Resource: Service},
	{Name: GetInstancesHealthStatus, Resource: Service},
	{Name: DiscoverInstances, Resource: NamespaceAndService},
	{Name: ListClusters, Resource: noResourceLevelPermissions},
	{Name: DescribeClusters, Resource: Cluster},
	{Name: ListTasks, Resource: scopedByTheClusterCondition, Condition: onCluster},
	{Name: DescribeTasks, Resource: scopedByTheClusterCondition, Condition: onCluster},
	{Name: DescribeContainerInstances, Resource: scopedByTheClusterCondition, Condition: onCluster},
	{Name: DescribeServices, Resource: scopedByTheClusterCondition, Condition: onCluster},
	{Name: DescribeTaskDefinition, Resource: noResourceLevelPermissions},
	{Name: DescribeInstances, Resource: noResourceLevelPermissions},
	{Name: ReceiveMessage, Resource: Queue},
	{Name: DeleteMessage, Resource: Queue, NotCalled: "it deletes messages (the kit grants it with sqs:ReceiveMessage)"},
}

// Lookup returns the action of the table named name.
func Lookup(name string) (Action, bool) {
	for _, a := range Actions {
		if a.Name == name {
			return a, true
		}
	}
	return Action{}, false
}

// Statement is an IAM policy statement.
type Statement struct {
	Effect    string                    `json:"Effect"`
	Action    string                    `json:"Action"`
	Resource  any                       `json:"Resource"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

// String returns the statement as JSON on one line.
func (s Statement) String() string {
	b, err := json.Marshal(s)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Statement returns the statement that grants a on arns, as the kit's policy has it: the ARNs
// are its resources, or (a "*" resource with a condition) the condition's values. It returns
// false for an action that no statement grants.
func (a Action) Statement(arns ...string) (Statement, bool) {
	if a.Resource == NoStatement {
		return Statement{}, false
	}
	st := Statement{Effect: "Allow", Action: a.Name, Resource: "*"}
	switch {
	case a.Condition.Key != "":
		st.Condition = map[string]map[string]any{a.Condition.Operator: {a.Condition.Key: oneOrMany(arns)}}
	case a.Resource != AnyResource:
		st.Resource = oneOrMany(arns)
	}
	return st, true
}

// oneOrMany returns the single value of vs as itself, and several as a list (the policy
// language takes both).
func oneOrMany(vs []string) any {
	if len(vs) == 1 {
		return vs[0]
	}
	return vs
}

// partition returns the ARN partition of region.
func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// arn returns the ARN arn:PARTITION:service:region:account:resource.
func arn(service, region, account, resource string) string {
	return "arn:" + partition(region) + ":" + service + ":" + region + ":" + account + ":" + resource
}
