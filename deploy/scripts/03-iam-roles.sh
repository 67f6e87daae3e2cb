#!/usr/bin/env bash
# Step 3 of the CLI path: the IAM roles the task definitions name.
#   - the task execution role (ECS agent: pull images, write container logs);
#   - the Prometheus task role (ecs-sd: read its two SSM parameters and the Cloud Map namespace;
#     Prometheus: remote-write to the AMP workspace), least privilege, see deploy/iam/ and the
#     IAM section of deploy/README.md.
# The web app and node exporter call no AWS API and get no task role.
#
# Environment (the outputs of steps 1 and 2 provide most of it):
#   AWS_REGION                                   required (or AWS_DEFAULT_REGION)
#   CLOUDMAP_NAMESPACE_ARN                       required
#   CLOUDMAP_SERVICE_ARNS                        comma-separated Cloud Map service ARNs ecs-sd may
#                                                read; default the web app's and node exporter's
#                                                (CLOUDMAP_WEBAPP_SERVICE_ARN, CLOUDMAP_NODE_EXPORTER_SERVICE_ARN)
#   DISCOVERY_NAMESPACES_PARAMETER_ARN, PROMETHEUS_CONFIG_PARAMETER_ARN, WORKSPACE_ARN   required
#   NAMESPACE_NAME                               default ecs-services
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
	DISCOVERY_NAMESPACES_PARAMETER_ARN PROMETHEUS_CONFIG_PARAMETER_ARN WORKSPACE_ARN
ROLE_NAME_PREFIX="${ROLE_NAME_PREFIX:-ecs-sd}"
AWS_ACCOUNT_ID="$(aws_account_id)"
AWS_PARTITION="$(aws_partition)"
[[ -n "$AWS_ACCOUNT_ID" ]] || die "cannot tell the AWS account id (set AWS_ACCOUNT_ID)"
export AWS_ACCOUNT_ID AWS_PARTITION

# The policy template takes the service ARNs as a JSON list body: "arn1", "arn2". The quotes are
# meant literally (the value is pasted into JSON, never word-split).
CLOUDMAP_SERVICE_ARNS_JSON=""
IFS=, read -r -a service_arns <<<"$CLOUDMAP_SERVICE_ARNS"
for arn in "${service_arns[@]}"; do
	arn="${arn// /}"
	[[ -z "$arn" ]] && continue
	[[ "$arn" == arn:*:servicediscovery:*:service/* ]] || die "not a Cloud Map service ARN: $arn"
	# shellcheck disable=SC2089
	CLOUDMAP_SERVICE_ARNS_JSON+="${CLOUDMAP_SERVICE_ARNS_JSON:+, }\"$arn\""
done
# shellcheck disable=SC2090
export CLOUDMAP_SERVICE_ARNS_JSON

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
render_to "$ECS_SD_DEPLOY_DIR/iam/ecs-tasks-trust-policy.json" "$tmp/trust.json"

# ensure_role NAME POLICY_TEMPLATE prints the ARN of role NAME, creating it when missing, with the
# ECS tasks trust policy and the rendered template as its only inline policy.
ensure_role() {
	local name="$1" template="$2" arn
	arn="$(awscli iam get-role --role-name "$name" --query Role.Arn --output text 2>/dev/null || true)"
	if [[ -z "$arn" || "$arn" == "None" ]]; then
		log "creating IAM role $name"
		arn="$(awscli iam create-role --role-name "$name" \
			--assume-role-policy-document "file://$tmp/trust.json" \
			--description "ecs-sd deployment: $(basename "$template" .json)" \
			--query Role.Arn --output text)"
	else
		log "updating IAM role $name"
		awscli iam update-assume-role-policy --role-name "$name" \
			--policy-document "file://$tmp/trust.json"
	fi
	render_to "$template" "$tmp/policy.json"
	awscli iam put-role-policy --role-name "$name" --policy-name "$(basename "$template" .json)" \
		--policy-document "file://$tmp/policy.json"
	printf '%s\n' "$arn"
}

execution_role="$(ensure_role "${ROLE_NAME_PREFIX}-task-execution" \
	"$ECS_SD_DEPLOY_DIR/iam/task-execution-policy.json")"
prometheus_role="$(ensure_role "${ROLE_NAME_PREFIX}-prometheus-task" \
	"$ECS_SD_DEPLOY_DIR/iam/prometheus-task-policy.json")"
emit EXECUTION_ROLE_ARN "$execution_role"
emit PROMETHEUS_TASK_ROLE_ARN "$prometheus_role"
