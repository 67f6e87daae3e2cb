//go:build integration

package deploy_test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecs-sd/ecs-sd/internal/harness/testenv"
)

// awsText runs the AWS CLI against moto and returns its text output, trimmed.
func awsText(t *testing.T, m *testenv.Moto, args ...string) string {
	t.Helper()
	args = append([]string{"--region", region, "--endpoint-url", m.URL, "--output", "text"}, args...)
	return strings.TrimSpace(mustRun(t, motoEnv(m, m.URL, nil), "aws", args...))
}

// egressNetwork is a VPC of each kind of subnet the services step may be given.
type egressNetwork struct {
	vpc, public, private, isolated, mainOnly string
	// A second VPC with every VPC endpoint the tasks need: endpoints has the S3 gateway endpoint
	// on its route table, noS3 does not.
	endpointsVPC, endpoints, noS3, noS3RouteTable string
}

func newEgressNetwork(t *testing.T, m *testenv.Moto) egressNetwork {
	t.Helper()
	var n egressNetwork
	subnet := func(vpc, cidr string) string {
		return awsText(t, m, "ec2", "create-subnet", "--vpc-id", vpc, "--cidr-block", cidr, "--query", "Subnet.SubnetId")
	}
	routeTable := func(vpc string, subnets ...string) string {
		rt := awsText(t, m, "ec2", "create-route-table", "--vpc-id", vpc, "--query", "RouteTable.RouteTableId")
		for _, s := range subnets {
			awsText(t, m, "ec2", "associate-route-table", "--route-table-id", rt, "--subnet-id", s)
		}
		return rt
	}
	n.vpc = awsText(t, m, "ec2", "create-vpc", "--cidr-block", "10.20.0.0/16", "--query", "Vpc.VpcId")
	n.public, n.private = subnet(n.vpc, "10.20.0.0/24"), subnet(n.vpc, "10.20.1.0/24")
	n.isolated, n.mainOnly = subnet(n.vpc, "10.20.2.0/24"), subnet(n.vpc, "10.20.3.0/24")
	igw := awsText(t, m, "ec2", "create-internet-gateway", "--query", "InternetGateway.InternetGatewayId")
	awsText(t, m, "ec2", "attach-internet-gateway", "--vpc-id", n.vpc, "--internet-gateway-id", igw)
	publicRT := routeTable(n.vpc, n.public)
	awsText(t, m, "ec2", "create-route", "--route-table-id", publicRT, "--destination-cidr-block", "0.0.0.0/0", "--gateway-id", igw)
	eip := awsText(t, m, "ec2", "allocate-address", "--domain", "vpc", "--query", "AllocationId")
	nat := awsText(t, m, "ec2", "create-nat-gateway", "--subnet-id", n.public, "--allocation-id", eip, "--query", "NatGateway.NatGatewayId")
	privateRT := routeTable(n.vpc, n.private)
	awsText(t, m, "ec2", "create-route", "--route-table-id", privateRT, "--destination-cidr-block", "0.0.0.0/0", "--nat-gateway-id", nat)
	routeTable(n.vpc, n.isolated)

	n.endpointsVPC = awsText(t, m, "ec2", "create-vpc", "--cidr-block", "10.21.0.0/16", "--query", "Vpc.VpcId")
	n.endpoints, n.noS3 = subnet(n.endpointsVPC, "10.21.0.0/24"), subnet(n.endpointsVPC, "10.21.1.0/24")
	endpointsRT := routeTable(n.endpointsVPC, n.endpoints)
	n.noS3RouteTable = routeTable(n.endpointsVPC, n.noS3)
	for _, name := range []string{"ssm", "servicediscovery", "data-servicediscovery", "sqs", "aps-workspaces", "ecr.api", "ecr.dkr", "logs"} {
		awsText(t, m, "ec2", "create-vpc-endpoint", "--vpc-id", n.endpointsVPC, "--vpc-endpoint-type", "Interface",
			"--service-name", "com.amazonaws."+region+"."+name, "--subnet-ids", n.endpoints)
	}
	awsText(t, m, "ec2", "create-vpc-endpoint", "--vpc-id", n.endpointsVPC, "--vpc-endpoint-type", "Gateway",
		"--service-name", "com.amazonaws."+region+".s3", "--route-table-ids", endpointsRT)
	return n
}

// TestServicesRequireSubnetsWithARouteOut runs the services step with each kind of subnet: it
// must refuse, before it creates anything, subnets from which tasks cannot pull images or reach
// SSM, Cloud Map, SQS and AMP, saying which subnet and what to pass, and accept the others.
func TestServicesRequireSubnetsWithARouteOut(t *testing.T) {
	t.Parallel()
	requireTool(t, "aws", "the AWS CLI")
	requireTool(t, "bash", "the scripts are bash")
	m := testenv.StartMoto(t)
	n := newEgressNetwork(t, m)
	taskDefinition := func(family string) string {
		return awsText(t, m, "ecs", "register-task-definition", "--family", family, "--network-mode", "awsvpc",
			"--requires-compatibilities", "EC2", "FARGATE", "--cpu", "256", "--memory", "512",
			"--container-definitions", `[{"name":"c","image":"i","memory":64}]`, "--query", "taskDefinition.taskDefinitionArn")
	}
	base := map[string]string{
		"CLOUDMAP_WEBAPP_SERVICE_ARN":        "arn:aws:servicediscovery:us-east-1:123456789012:service/srv-web",
		"CLOUDMAP_NODE_EXPORTER_SERVICE_ARN": "arn:aws:servicediscovery:us-east-1:123456789012:service/srv-node",
		"PROMETHEUS_TASK_DEFINITION_ARN":     taskDefinition("prometheus"),
		"WEBAPP_TASK_DEFINITION_ARN":         taskDefinition("webapp"),
		"NODE_EXPORTER_TASK_DEFINITION_ARN":  taskDefinition("node-exporter"),
	}
	const advice = "set SUBNET_IDS to private subnets whose route table sends 0.0.0.0/0 to a NAT gateway"
	for _, tc := range []struct {
		name, vpc, subnets, launchType string
		accepted                       bool
		want                           []string // in stderr
		notWant                        []string
	}{
		{name: "public subnet", vpc: n.vpc, subnets: n.public, want: []string{
			"subnet " + n.public, "it is a public subnet (default route to igw-", "tasks get no public IP",
			"lacks the endpoints com.amazonaws.us-east-1.ssm (interface)", "com.amazonaws.us-east-1.sqs (interface)",
			"com.amazonaws.us-east-1.s3 (gateway", advice}},
		{name: "one public among private", vpc: n.vpc, subnets: n.private + "," + n.public,
			want: []string{"subnet " + n.public, advice}, notWant: []string{"subnet " + n.private}},
		{name: "no default route", vpc: n.vpc, subnets: n.isolated, want: []string{"subnet " + n.isolated, "no default route", advice}},
		{name: "main route table", vpc: n.vpc, subnets: n.mainOnly, want: []string{"subnet " + n.mainOnly, "no default route", advice}},
		{name: "endpoints without the S3 gateway", vpc: n.endpointsVPC, subnets: n.noS3, want: []string{
			"subnet " + n.noS3, "com.amazonaws.us-east-1.s3 (gateway, on route table " + n.noS3RouteTable + ")", advice},
			notWant: []string{"com.amazonaws.us-east-1.ssm (interface)"}},
		{name: "endpoints on Fargate with a quay.io image", vpc: n.endpointsVPC, subnets: n.endpoints, launchType: "FARGATE",
			want: []string{"image quay.io/prometheus/prometheus:v3.5.0 is not in ECR in us-east-1: it needs a NAT route"}},
		{name: "NAT", vpc: n.vpc, subnets: n.private, accepted: true},
		{name: "endpoints on EC2", vpc: n.endpointsVPC, subnets: n.endpoints, accepted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cluster := "egress-" + strings.ReplaceAll(tc.name, " ", "-")
			vars := map[string]string{"VPC_ID": tc.vpc, "SUBNET_IDS": tc.subnets, "CLUSTER_NAME": cluster}
			for k, v := range base {
				vars[k] = v
			}
			if tc.launchType != "" {
				vars["LAUNCH_TYPE"] = tc.launchType
			}
			stdout, stderr, err := run(t, motoEnv(m, m.URL, vars), "bash", filepath.Join(scriptsDir, "06-services.sh"))
			clusters := awsText(t, m, "ecs", "describe-clusters", "--clusters", cluster, "--query", "clusters[?status=='ACTIVE'].clusterName")
			if tc.accepted {
				if err != nil {
					t.Fatalf("06-services.sh refused subnets %s: %v\nstderr:\n%s", tc.subnets, err, stderr)
				}
				services := awsText(t, m, "ecs", "list-services", "--cluster", cluster, "--query", "length(serviceArns)")
				if clusters != cluster || services != "3" || !strings.Contains(stderr, "have a route out") {
					t.Errorf("accepted subnets %s: cluster %q with %s services, want %s with 3\nstderr:\n%s", tc.subnets, clusters, services, cluster, stderr)
				}
				return
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("06-services.sh with subnets %s exited with %v, want 1\nstdout:\n%s\nstderr:\n%s", tc.subnets, err, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(stderr, w) {
					t.Errorf("stderr says %q, which is not wrong:\n%s", w, stderr)
				}
			}
			if clusters != "" || stdout != "" {
				t.Errorf("refused subnets, yet cluster %q was created and stdout is %q", clusters, stdout)
			}
		})
	}
}
