#!/usr/bin/env bash
# Step 4 of the CLI path: the IAM roles the task definitions name.
#   - the task execution role (ECS agent: write container logs; pull the images that come from
#     ECR, from their repositories only);
#   - the Prometheus task role (ecs-sd: read its two SSM parameters and the Cloud Map namespace,
#     and in event mode receive and delete the messages of its queue; Prometheus: remote-write to
#     the AMP workspace), least privilege, see deploy/iam/ and the IAM section of deploy/README.md.
# The web app and node exporter call no AWS API and get no task role.
#
# Environment (the outputs of steps 1 and 2 provide most of it):
#   AWS_REGION                                   required (or AWS_DEFAULT_REGION)
#   CLOUDMAP_NAMESPACE_ARN                       required
#   CLOUDMAP_SERVICE_ARNS                        comma-separated Cloud Map service ARNs ecs-sd may
#                                                read; default the web app's and node exporter's
#                                                (CLOUDMAP_WEBAPP_SERVICE_ARN, CLOUDMAP_NODE_EXPORTER_SERVICE_ARN)
#   DISCOVERY_NAMESPACES_PARAMETER_ARN, PROMETHEUS_CONFIG_PARAMETER_ARN, WORKSPACE_ARN   required
#   ECS_SD_IMAGE, WEBAPP_IMAGE                   required: the execution role may pull from the
#                                                ECR repositories of these and of
#                                                PROMETHEUS_IMAGE and NODE_EXPORTER_IMAGE (images
#                                                of other registries need no permission)
#   EVENTS_QUEUE_ARN                             the event queue (step 3): the task role may
#                                                receive and delete its messages
#                                                (iam/events-consumer-policy.json); when empty,
#                                                the role gets no SQS permission
#   ROLE_NAME_PREFIX                             default ecs-sd
#   AWS_ACCOUNT_ID                               default: asked from STS
#
# Prints (stdout, for eval): EXECUTION_ROLE_ARN, PROMETHEUS_TASK_ROLE_ARN.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ -z "${CLOUDMAP_SERVICE_ARNS:-}" && -n "${CLOUDMAP_WEBAPP_SERVICE_ARN:-}" && -n "${CLOUDMAP_NODE_EXPORTER_SERVICE_ARN:-}" ]]; then
	CLOUDMAP_SERVICE_ARNS="${CLOUDMAP_WEBAPP_SERVICE_ARN},${CLOUDMAP_NODE_EXPORTER_SERVICE_ARN}"
fi
require_env AWS_REGION CLOUDMAP_NAMESPACE_ARN CLOUDMAP_SERVICE_ARNS \
	DISCOVERY_NAMESPACES_PARAMETER_ARN PROMETHEUS_CONFIG_PARAMETER_ARN WORKSPACE_ARN \
	ECS_SD_IMAGE WEBAPP_IMAGE
ROLE_NAME_PREFIX="${ROLE_NAME_PREFIX:-ecs-sd}"
if [[ -n "${EVENTS_QUEUE_ARN:-}" && ! "$EVENTS_QUEUE_ARN" =~ ^arn:[a-z-]+:sqs:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+$ ]]; then
	die "EVENTS_QUEUE_ARN: not an SQS queue ARN: $EVENTS_QUEUE_ARN"
fi
AWS_ACCOUNT_ID="$(aws_account_id)"
AWS_PARTITION="$(aws_partition)"
[[ -n "$AWS_ACCOUNT_ID" ]] || die "cannot tell the AWS account id (set AWS_ACCOUNT_ID)"
export AWS_ACCOUNT_ID AWS_PARTITION

# The policy templates take ARN lists as JSON list bodies: "arn1", "arn2".
IFS=, read -r -a service_arns <<<"$CLOUDMAP_SERVICE_ARNS"
for i in "${!service_arns[@]}"; do
	arn="${service_arns[$i]// /}"
	service_arns[i]="$arn"
	[[ -z "$arn" || "$arn" == arn:*:servicediscovery:*:service/* ]] || die "not a Cloud Map service ARN: $arn"
done
CLOUDMAP_SERVICE_ARNS_JSON="$(json_list_body "${service_arns[@]}")"
ecr_arns=()
for image in "$ECS_SD_IMAGE" "$WEBAPP_IMAGE" "$PROMETHEUS_IMAGE" "$NODE_EXPORTER_IMAGE"; do
	arn="$(ecr_repository_arn "$image")"
	if [[ -n "$arn" ]] && [[ " ${ecr_arns[*]} " != *" $arn "* ]]; then
		ecr_arns+=("$arn")
	fi
done
ECR_REPOSITORY_ARNS_JSON="$(json_list_body "${ecr_arns[@]}")"
export CLOUDMAP_SERVICE_ARNS_JSON ECR_REPOSITORY_ARNS_JSON

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
render_to "$ECS_SD_DEPLOY_DIR/iam/ecs-tasks-trust-policy.json" "$tmp/trust.json"

# ensure_role NAME prints the ARN of role NAME, creating it when missing, with the ECS tasks
# trust policy.
ensure_role() {
	local name="$1" arn
	arn="$(awscli iam get-role --role-name "$name" --query Role.Arn --output text 2>/dev/null || true)"
	if [[ -z "$arn" || "$arn" == "None" ]]; then
		log "creating IAM role $name"
		arn="$(awscli iam create-role --role-name "$name" \
			--assume-role-policy-document "file://$tmp/trust.json" \
			--description "ecs-sd deployment" --query Role.Arn --output text)"
	else
		log "updating IAM role $name"
		awscli iam update-assume-role-policy --role-name "$name" \
			--policy-document "file://$tmp/trust.json"
	fi
	printf '%s\n' "$arn"
}

# put_policy ROLE TEMPLATE renders TEMPLATE and makes it the role's inline policy named after it.
put_policy() {
	local role="$1" template="$2"
	render_to "$template" "$tmp/policy.json"
	awscli iam put-role-policy --role-name "$role" --policy-name "$(basename "$template" .json)" \
		--policy-document "file://$tmp/policy.json"
}

# remove_policy ROLE NAME deletes the role's inline policy NAME, if it has one.
remove_policy() {
	local role="$1" name="$2" err
	err="$(awscli iam delete-role-policy --role-name "$role" --policy-name "$name" 2>&1)" ||
		[[ "$err" == *NoSuchEntity* ]] || die "delete the policy $name of $role: $err"
}

execution_role_name="${ROLE_NAME_PREFIX}-task-execution"
execution_role="$(ensure_role "$execution_role_name")"
put_policy "$execution_role_name" "$ECS_SD_DEPLOY_DIR/iam/task-execution-policy.json"
if ((${#ecr_arns[@]} > 0)); then
	log "the execution role may pull from ${ecr_arns[*]}"
	put_policy "$execution_role_name" "$ECS_SD_DEPLOY_DIR/iam/ecr-pull-policy.json"
else
	log "no image comes from ECR: the execution role gets no ECR permission"
	remove_policy "$execution_role_name" ecr-pull-policy
fi

prometheus_role_name="${ROLE_NAME_PREFIX}-prometheus-task"
prometheus_role="$(ensure_role "$prometheus_role_name")"
put_policy "$prometheus_role_name" "$ECS_SD_DEPLOY_DIR/iam/prometheus-task-policy.json"
if [[ -n "${EVENTS_QUEUE_ARN:-}" ]]; then
	log "ecs-sd may receive and delete the messages of $EVENTS_QUEUE_ARN"
	put_policy "$prometheus_role_name" "$ECS_SD_DEPLOY_DIR/iam/events-consumer-policy.json"
else
	log "no EVENTS_QUEUE_ARN: the Prometheus task role gets no SQS permission (polling only)"
	remove_policy "$prometheus_role_name" events-consumer-policy
fi
emit EXECUTION_ROLE_ARN "$execution_role"
emit PROMETHEUS_TASK_ROLE_ARN "$prometheus_role"
