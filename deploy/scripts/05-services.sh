#!/usr/bin/env bash
# Step 5 of the CLI path: the ECS cluster, the security groups, and the three ECS services, the
# scraped ones registered in Cloud Map with --service-registries:
#   - webapp:        REPLICA, awsvpc; Cloud Map A records (registryArn only);
#   - node-exporter: DAEMON, host network mode, EC2 only; Cloud Map SRV records, so the registry
#                    also names the container and port (containerName, containerPort);
#   - prometheus:    REPLICA of 1, awsvpc (ecs-sd reaches Prometheus on localhost); never two at
#                    once (maximumPercent 100), so AMP does not get the same series twice.
#
# Environment:
#   AWS_REGION                          required (or AWS_DEFAULT_REGION)
#   CLUSTER_NAME                        default ecs-sd; created when missing. Its EC2 container
#                                       instances are yours to provide (see deploy/README.md)
#   VPC_ID                              required unless both security groups are given
#   SUBNET_IDS                          comma-separated (private) subnets for the awsvpc tasks;
#                                       default: every subnet of VPC_ID
#   PROMETHEUS_SECURITY_GROUP_ID        default: created (ecs-sd-prometheus, all egress)
#   WEBAPP_SECURITY_GROUP_ID            default: created (ecs-sd-webapp, 3000/tcp from Prometheus)
#   CONTAINER_INSTANCE_SECURITY_GROUP_ID optional: the container instances' group, opened to
#                                       9100/tcp (node exporter) from Prometheus
#   CLOUDMAP_WEBAPP_SERVICE_ARN, CLOUDMAP_NODE_EXPORTER_SERVICE_ARN             required (step 1)
#   PROMETHEUS_TASK_DEFINITION_ARN, WEBAPP_TASK_DEFINITION_ARN,
#   NODE_EXPORTER_TASK_DEFINITION_ARN                                           required (step 4)
#   LAUNCH_TYPE                         EC2 (default) or FARGATE, for webapp and prometheus
#   WEBAPP_DESIRED_COUNT                default 2
#
# Prints (stdout, for eval): CLUSTER_NAME, the security group ids, and WEBAPP_SERVICE_ARN,
# NODE_EXPORTER_SERVICE_ARN, PROMETHEUS_SERVICE_ARN.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER_NAME="${CLUSTER_NAME:-ecs-sd}"
LAUNCH_TYPE="${LAUNCH_TYPE:-EC2}"
WEBAPP_DESIRED_COUNT="${WEBAPP_DESIRED_COUNT:-2}"
require_env AWS_REGION CLOUDMAP_WEBAPP_SERVICE_ARN CLOUDMAP_NODE_EXPORTER_SERVICE_ARN \
	PROMETHEUS_TASK_DEFINITION_ARN WEBAPP_TASK_DEFINITION_ARN NODE_EXPORTER_TASK_DEFINITION_ARN
case "$LAUNCH_TYPE" in
EC2 | FARGATE) ;;
*) die "LAUNCH_TYPE must be EC2 or FARGATE, not $LAUNCH_TYPE" ;;
esac
if [[ -z "${PROMETHEUS_SECURITY_GROUP_ID:-}" || -z "${WEBAPP_SECURITY_GROUP_ID:-}" || -z "${SUBNET_IDS:-}" ]]; then
	require_env VPC_ID
fi

cluster_arn="$(awscli ecs create-cluster --cluster-name "$CLUSTER_NAME" \
	--query cluster.clusterArn --output text)"
log "cluster $cluster_arn"
emit CLUSTER_NAME "$CLUSTER_NAME"

if [[ -z "${SUBNET_IDS:-}" ]]; then
	subnets="$(awscli ec2 describe-subnets --filters "Name=vpc-id,Values=$VPC_ID" \
		--query 'Subnets[].SubnetId' --output text)"
	[[ -n "$subnets" ]] || die "VPC $VPC_ID has no subnets: set SUBNET_IDS"
	SUBNET_IDS="$(tr -s '[:space:]' ',' <<<"$subnets")"
	SUBNET_IDS="${SUBNET_IDS%,}"
	log "using every subnet of $VPC_ID: $SUBNET_IDS"
fi

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

# ensure_service NAME TASK_DEFINITION CREATE_ARGS... creates ECS service NAME, or points an
# existing one at TASK_DEFINITION; prints its ARN.
ensure_service() {
	local name="$1" task_definition="$2" arn
	shift 2
	arn="$(service_arn "$name")"
	if [[ -z "$arn" || "$arn" == "None" ]]; then
		log "creating ECS service $name"
		arn="$(awscli ecs create-service --cluster "$CLUSTER_NAME" --service-name "$name" \
			--task-definition "$task_definition" "$@" --query service.serviceArn --output text)"
	else
		log "updating ECS service $name to $task_definition"
		awscli ecs update-service --cluster "$CLUSTER_NAME" --service "$name" \
			--task-definition "$task_definition" >/dev/null
	fi
	printf '%s\n' "$arn"
}

webapp_service="$(ensure_service webapp "$WEBAPP_TASK_DEFINITION_ARN" \
	--desired-count "$WEBAPP_DESIRED_COUNT" \
	--scheduling-strategy REPLICA \
	--launch-type "$LAUNCH_TYPE" \
	--network-configuration "awsvpcConfiguration={subnets=${subnet_list},securityGroups=[${WEBAPP_SECURITY_GROUP_ID}],assignPublicIp=DISABLED}" \
	--service-registries "registryArn=${CLOUDMAP_WEBAPP_SERVICE_ARN}")"

node_exporter_service="$(ensure_service node-exporter "$NODE_EXPORTER_TASK_DEFINITION_ARN" \
	--scheduling-strategy DAEMON \
	--launch-type EC2 \
	--service-registries "registryArn=${CLOUDMAP_NODE_EXPORTER_SERVICE_ARN},containerName=node-exporter,containerPort=9100")"

prometheus_service="$(ensure_service prometheus "$PROMETHEUS_TASK_DEFINITION_ARN" \
	--desired-count 1 \
	--scheduling-strategy REPLICA \
	--launch-type "$LAUNCH_TYPE" \
	--deployment-configuration "maximumPercent=100,minimumHealthyPercent=0" \
	--network-configuration "awsvpcConfiguration={subnets=${subnet_list},securityGroups=[${PROMETHEUS_SECURITY_GROUP_ID}],assignPublicIp=DISABLED}")"

emit WEBAPP_SERVICE_ARN "$webapp_service"
emit NODE_EXPORTER_SERVICE_ARN "$node_exporter_service"
emit PROMETHEUS_SERVICE_ARN "$prometheus_service"
