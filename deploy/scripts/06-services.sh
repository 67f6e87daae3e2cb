#!/usr/bin/env bash
# Step 6 of the CLI path: the ECS cluster, the security groups, and the three ECS services, the
# scraped ones registered in Cloud Map with --service-registries:
#   - webapp:        REPLICA, awsvpc; Cloud Map A records (registryArn only);
#   - node-exporter: DAEMON, host network mode, EC2 only; Cloud Map SRV records, so the registry
#                    also names the container and port (containerName, containerPort);
#   - prometheus:    REPLICA of 1, awsvpc (ecs-sd reaches Prometheus on localhost); never two at
#                    once (maximumPercent 100), so AMP does not get the same series twice.
# webapp and prometheus have the deployment circuit breaker (with rollback). Before creating
# anything the step checks that every subnet in SUBNET_IDS has a route out (see check_egress) and
# that the ECS service-linked role exists (creating it when missing).
#
# Environment:
#   AWS_REGION                          required (or AWS_DEFAULT_REGION)
#   CLUSTER_NAME                        default ecs-sd (lib.sh); created when missing. Its EC2 container
#                                       instances are yours to provide (see deploy/README.md)
#   VPC_ID                              required unless both security groups are given
#   SUBNET_IDS                          required: comma-separated private subnets for the awsvpc
#                                       tasks (assignPublicIp=DISABLED), each routed to a NAT
#                                       gateway, or in a VPC with the endpoints listed in
#                                       check_egress
#   PROMETHEUS_SECURITY_GROUP_ID        default: created (ecs-sd-prometheus, all egress)
#   WEBAPP_SECURITY_GROUP_ID            default: created (ecs-sd-webapp, 3000/tcp from Prometheus)
#   CONTAINER_INSTANCE_SECURITY_GROUP_ID optional: the container instances' group, opened to
#                                       9100/tcp (node exporter) from Prometheus
#   CLOUDMAP_WEBAPP_SERVICE_ARN, CLOUDMAP_NODE_EXPORTER_SERVICE_ARN             required (step 1)
#   PROMETHEUS_TASK_DEFINITION_ARN, WEBAPP_TASK_DEFINITION_ARN,
#   NODE_EXPORTER_TASK_DEFINITION_ARN                                           required (step 5)
#   LAUNCH_TYPE                         EC2 (default) or FARGATE, for webapp and prometheus
#   WEBAPP_DESIRED_COUNT                default 2
#
# Prints (stdout, for eval): CLUSTER_NAME, the security group ids, and WEBAPP_SERVICE_ARN,
# NODE_EXPORTER_SERVICE_ARN, PROMETHEUS_SERVICE_ARN.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LAUNCH_TYPE="${LAUNCH_TYPE:-EC2}"
WEBAPP_DESIRED_COUNT="${WEBAPP_DESIRED_COUNT:-2}"
require_env AWS_REGION CLOUDMAP_WEBAPP_SERVICE_ARN CLOUDMAP_NODE_EXPORTER_SERVICE_ARN \
	PROMETHEUS_TASK_DEFINITION_ARN WEBAPP_TASK_DEFINITION_ARN NODE_EXPORTER_TASK_DEFINITION_ARN
case "$LAUNCH_TYPE" in
EC2 | FARGATE) ;;
*) die "LAUNCH_TYPE must be EC2 or FARGATE, not $LAUNCH_TYPE" ;;
esac
if [[ -z "${SUBNET_IDS:-}" ]]; then
	die "missing required environment variable(s): SUBNET_IDS: name the private subnets of the tasks" \
		"(comma-separated), each with a route out through a NAT gateway or VPC endpoints (see deploy/README.md)"
fi
if [[ -z "${PROMETHEUS_SECURITY_GROUP_ID:-}" || -z "${WEBAPP_SECURITY_GROUP_ID:-}" ]]; then
	require_env VPC_ID
fi

# The interface endpoints a task needs when its subnet has no NAT route: SSM, Cloud Map and SQS
# (ecs-sd, SQS for its event queue), AMP (Prometheus's remote write), ECR and CloudWatch Logs (image pulls and the awslogs
# driver on Fargate; on EC2 the container instance's subnets need them). ECR image layers come
# from S3 through a gateway endpoint on the subnet's route table.
interface_endpoints=(ssm servicediscovery data-servicediscovery sqs aps-workspaces ecr.api ecr.dkr logs)

# check_egress SUBNET prints nothing when SUBNET has a route out for the tasks, else why not.
# A route out is a default route (0.0.0.0/0) to a NAT gateway in the subnet's route table (its
# own, else the VPC's main one), or, without it, every endpoint above in the subnet's VPC. With
# endpoints only, the images must come from ECR: images of other registries need NAT.
check_egress() {
	local subnet="$1" vpc rt target endpoints missing=() name image
	vpc="$(awscli ec2 describe-subnets --subnet-ids "$subnet" --query 'Subnets[0].VpcId' --output text 2>&1)" ||
		{ printf 'subnet %s: %s\n' "$subnet" "$vpc"; return; }
	rt="$(awscli ec2 describe-route-tables --filters "Name=association.subnet-id,Values=$subnet" \
		--query 'RouteTables[0].RouteTableId' --output text)"
	if [[ -z "$rt" || "$rt" == "None" ]]; then
		rt="$(awscli ec2 describe-route-tables --filters "Name=vpc-id,Values=$vpc" "Name=association.main,Values=true" \
			--query 'RouteTables[0].RouteTableId' --output text)"
	fi
	target="$(awscli ec2 describe-route-tables --route-table-ids "$rt" --query \
		"RouteTables[0].Routes[?DestinationCidrBlock=='0.0.0.0/0' && State!='blackhole'] | [0].[NatGatewayId,GatewayId,TransitGatewayId,NetworkInterfaceId]" \
		--output text | tr -s '\t' '\n' | grep -v '^None$' | head -n 1 || true)"
	[[ "$target" == nat-* ]] && return
	endpoints="$(awscli ec2 describe-vpc-endpoints --filters "Name=vpc-id,Values=$vpc" \
		--query "VpcEndpoints[?State=='available'].[VpcEndpointType,ServiceName,join(' ',RouteTableIds)]" --output text)"
	for name in "${interface_endpoints[@]}"; do
		grep -Eq "^Interface[[:space:]]+com\.amazonaws\.${AWS_REGION}\.${name//./\\.}([[:space:]]|$)" <<<"$endpoints" ||
			missing+=("com.amazonaws.${AWS_REGION}.${name} (interface)")
	done
	grep -Eq "^Gateway[[:space:]]+com\.amazonaws\.${AWS_REGION}\.s3[[:space:]].*\b${rt}\b" <<<"$endpoints" ||
		missing+=("com.amazonaws.${AWS_REGION}.s3 (gateway, on route table $rt)")
	if ((${#missing[@]} > 0)); then
		local why="no default route" list
		list="$(printf '%s; ' "${missing[@]}")"
		[[ -n "$target" ]] && why="its default route goes to $target, not a NAT gateway"
		[[ "$target" == igw-* ]] && why="it is a public subnet (default route to $target) and tasks get no public IP"
		printf 'subnet %s (route table %s): %s, and VPC %s lacks the endpoints %s\n' \
			"$subnet" "$rt" "$why" "$vpc" "${list%; }"
		return
	fi
	if [[ "$LAUNCH_TYPE" == FARGATE ]]; then
		for image in "${ECS_SD_IMAGE:-}" "${WEBAPP_IMAGE:-}" "$PROMETHEUS_IMAGE"; do
			if [[ -n "$image" && "$(ecr_repository_arn "$image")" != arn:*:ecr:"$AWS_REGION":* ]]; then
				printf 'subnet %s reaches AWS through VPC endpoints only, but image %s is not in ECR in %s: it needs a NAT route (or a copy in that ECR)\n' \
					"$subnet" "$image" "$AWS_REGION"
			fi
		done
	fi
}

IFS=, read -r -a subnets <<<"${SUBNET_IDS// /}"
problems=""
for subnet in "${subnets[@]}"; do
	[[ -n "$subnet" ]] && problems+="$(check_egress "$subnet")"$'\n'
done
problems="$(sed '/^$/d' <<<"$problems")"
if [[ -n "$problems" ]]; then
	die "SUBNET_IDS names subnets from which tasks cannot reach ECR, SSM, Cloud Map, SQS, AMP and CloudWatch Logs:"$'\n'"$problems"$'\n'"set SUBNET_IDS to private subnets whose route table sends 0.0.0.0/0 to a NAT gateway (CREATE_VPC=true in step 1 makes such a VPC), or create the missing VPC endpoints"
fi
log "subnets $SUBNET_IDS have a route out"

# The ECS service-linked role (AWSServiceRoleForECS) lets ECS manage task ENIs and Cloud Map
# registrations. CreateCluster creates it when the caller may (iam:CreateServiceLinkedRole), and
# silently does not otherwise: services then fail to start. Make sure it exists.
slr="$(awscli iam list-roles --path-prefix /aws-service-role/ecs.amazonaws.com/ \
	--query 'Roles[0].RoleName' --output text)"
if [[ -z "$slr" || "$slr" == "None" ]]; then
	log "creating the ECS service-linked role"
	# Another deployment may have created it meanwhile (AWS then says the name "has been taken").
	err="$(awscli iam create-service-linked-role --aws-service-name ecs.amazonaws.com 2>&1 >/dev/null)" ||
		[[ "$err" == *"has been taken"* || "$err" == *EntityAlreadyExists* ]] ||
		die "cannot create the ECS service-linked role AWSServiceRoleForECS (it needs iam:CreateServiceLinkedRole for ecs.amazonaws.com): $err"
fi

cluster_arn="$(awscli ecs create-cluster --cluster-name "$CLUSTER_NAME" \
	--query cluster.clusterArn --output text)"
log "cluster $cluster_arn"
emit CLUSTER_NAME "$CLUSTER_NAME"

# ensure_security_group NAME DESCRIPTION prints the id of group NAME in VPC_ID, creating it.
ensure_security_group() {
	local name="$1" description="$2" id
	id="$(awscli ec2 describe-security-groups \
		--filters "Name=vpc-id,Values=$VPC_ID" "Name=group-name,Values=$name" \
		--query 'SecurityGroups[0].GroupId' --output text)"
	if [[ -z "$id" || "$id" == "None" ]]; then
		log "creating security group $name in $VPC_ID"
		id="$(awscli ec2 create-security-group --vpc-id "$VPC_ID" --group-name "$name" \
			--description "$description" --query GroupId --output text)"
	fi
	printf '%s\n' "$id"
}

# allow_from GROUP PORT SOURCE_GROUP opens PORT/tcp of GROUP to SOURCE_GROUP (once).
allow_from() {
	local group="$1" port="$2" source="$3" out
	if ! out="$(awscli ec2 authorize-security-group-ingress --group-id "$group" \
		--ip-permissions "IpProtocol=tcp,FromPort=$port,ToPort=$port,UserIdGroupPairs=[{GroupId=$source}]" \
		2>&1 >/dev/null)"; then
		[[ "$out" == *InvalidPermission.Duplicate* ]] || die "authorize $port/tcp on $group: $out"
	fi
}

if [[ -z "${PROMETHEUS_SECURITY_GROUP_ID:-}" ]]; then
	PROMETHEUS_SECURITY_GROUP_ID="$(ensure_security_group ecs-sd-prometheus \
		"Prometheus and ecs-sd: scrape targets, call AWS APIs")"
fi
if [[ -z "${WEBAPP_SECURITY_GROUP_ID:-}" ]]; then
	WEBAPP_SECURITY_GROUP_ID="$(ensure_security_group ecs-sd-webapp "Sample web app: metrics scraped by Prometheus")"
fi
allow_from "$WEBAPP_SECURITY_GROUP_ID" 3000 "$PROMETHEUS_SECURITY_GROUP_ID"
if [[ -n "${CONTAINER_INSTANCE_SECURITY_GROUP_ID:-}" ]]; then
	allow_from "$CONTAINER_INSTANCE_SECURITY_GROUP_ID" 9100 "$PROMETHEUS_SECURITY_GROUP_ID"
else
	log "CONTAINER_INSTANCE_SECURITY_GROUP_ID not set: open 9100/tcp on the container instances to $PROMETHEUS_SECURITY_GROUP_ID yourself"
fi
emit PROMETHEUS_SECURITY_GROUP_ID "$PROMETHEUS_SECURITY_GROUP_ID"
emit WEBAPP_SECURITY_GROUP_ID "$WEBAPP_SECURITY_GROUP_ID"

subnet_list="$(csv_to_shorthand_list "$SUBNET_IDS")"

# service_arn NAME prints the ARN of the ECS service NAME when it exists and is not deleted.
service_arn() {
	awscli ecs describe-services --cluster "$CLUSTER_NAME" --services "$1" \
		--query "services[?status=='ACTIVE'] | [0].serviceArn" --output text
}

# ensure_service NAME TASK_DEFINITION DEPLOYMENT_CONFIGURATION CREATE_ARGS... creates ECS service
# NAME, or points an existing one at TASK_DEFINITION; both apply DEPLOYMENT_CONFIGURATION (when
# not empty). Prints the service's ARN.
ensure_service() {
	local name="$1" task_definition="$2" deployment=() arn
	[[ -n "$3" ]] && deployment=(--deployment-configuration "$3")
	shift 3
	arn="$(service_arn "$name")"
	if [[ -z "$arn" || "$arn" == "None" ]]; then
		log "creating ECS service $name"
		arn="$(awscli ecs create-service --cluster "$CLUSTER_NAME" --service-name "$name" \
			--task-definition "$task_definition" "${deployment[@]}" "$@" --query service.serviceArn --output text)"
	else
		log "updating ECS service $name to $task_definition"
		awscli ecs update-service --cluster "$CLUSTER_NAME" --service "$name" \
			--task-definition "$task_definition" "${deployment[@]}" >/dev/null
	fi
	printf '%s\n' "$arn"
}

# A deployment whose tasks keep failing stops and rolls back instead of retrying for hours.
circuit_breaker="deploymentCircuitBreaker={enable=true,rollback=true}"

webapp_service="$(ensure_service webapp "$WEBAPP_TASK_DEFINITION_ARN" "$circuit_breaker" \
	--desired-count "$WEBAPP_DESIRED_COUNT" \
	--scheduling-strategy REPLICA \
	--launch-type "$LAUNCH_TYPE" \
	--network-configuration "awsvpcConfiguration={subnets=${subnet_list},securityGroups=[${WEBAPP_SECURITY_GROUP_ID}],assignPublicIp=DISABLED}" \
	--service-registries "registryArn=${CLOUDMAP_WEBAPP_SERVICE_ARN}")"

node_exporter_service="$(ensure_service node-exporter "$NODE_EXPORTER_TASK_DEFINITION_ARN" "" \
	--scheduling-strategy DAEMON \
	--launch-type EC2 \
	--service-registries "registryArn=${CLOUDMAP_NODE_EXPORTER_SERVICE_ARN},containerName=node-exporter,containerPort=9100")"

prometheus_service="$(ensure_service prometheus "$PROMETHEUS_TASK_DEFINITION_ARN" \
	"maximumPercent=100,minimumHealthyPercent=0,${circuit_breaker}" \
	--desired-count 1 \
	--scheduling-strategy REPLICA \
	--launch-type "$LAUNCH_TYPE" \
	--network-configuration "awsvpcConfiguration={subnets=${subnet_list},securityGroups=[${PROMETHEUS_SECURITY_GROUP_ID}],assignPublicIp=DISABLED}")"

emit WEBAPP_SERVICE_ARN "$webapp_service"
emit NODE_EXPORTER_SERVICE_ARN "$node_exporter_service"
emit PROMETHEUS_SERVICE_ARN "$prometheus_service"
