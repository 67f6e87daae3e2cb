#!/usr/bin/env bash
# Step 3 of the CLI path: event mode. ecs-sd long-polls an SQS queue to which EventBridge rules
# send what changes the targets, so that a change reaches Prometheus in seconds and periodic
# discovery is only a resync (every 5 minutes, task-definitions/prometheus.json):
#   - a dead-letter queue, then the queue: SQS-managed encryption, visibility timeout 60 s,
#     messages kept 1 day (14 days in the dead-letter queue, which a message reaches after 5
#     receives without a delete), 20 s long polls;
#   - rule PREFIX-ecs-task-state-change: "ECS Task State Change" events of the watched clusters;
#   - rule PREFIX-cloud-map-instance-change: Cloud Map RegisterInstance/DeregisterInstance calls,
#     which reach EventBridge as CloudTrail events, only in an account with a trail that logs
#     management events (the step warns when it finds none);
#   - the queue's policy: only the two rules may send (events.amazonaws.com, aws:SourceArn);
#   - the rules' target: the queue.
# The next steps give the Prometheus task role receive and delete on this queue only
# (iam/events-consumer-policy.json) and ecs-sd --events.queue-url. Running it again updates the
# queues' attributes, the rules' patterns and the policy in place.
#
# Environment:
#   AWS_REGION            required (or AWS_DEFAULT_REGION)
#   CLUSTER_NAME          default ecs-sd: the cluster whose task events are sent
#   EVENTS_CLUSTER_ARNS   comma-separated cluster ARNs to watch instead (e.g. the clusters of
#                         ecs-sd's ECS source)
#   EVENTS_QUEUE_NAME     default ecs-sd-events (the dead-letter queue: NAME-dlq)
#   EVENTS_RULE_PREFIX    default ecs-sd
#   AWS_ACCOUNT_ID        default: asked from STS
#
# Prints (stdout, for eval): EVENTS_QUEUE_URL, EVENTS_QUEUE_ARN, EVENTS_DEAD_LETTER_QUEUE_URL,
# EVENTS_DEAD_LETTER_QUEUE_ARN, EVENTS_ECS_RULE_ARN, EVENTS_CLOUDMAP_RULE_ARN.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env AWS_REGION
EVENTS_QUEUE_NAME="${EVENTS_QUEUE_NAME:-ecs-sd-events}"
EVENTS_RULE_PREFIX="${EVENTS_RULE_PREFIX:-ecs-sd}"
AWS_ACCOUNT_ID="$(aws_account_id)"
AWS_PARTITION="$(aws_partition)"
[[ -n "$AWS_ACCOUNT_ID" ]] || die "cannot tell the AWS account id (set AWS_ACCOUNT_ID)"
if [[ -z "${EVENTS_CLUSTER_ARNS:-}" ]]; then
	EVENTS_CLUSTER_ARNS="arn:${AWS_PARTITION}:ecs:${AWS_REGION}:${AWS_ACCOUNT_ID}:cluster/${CLUSTER_NAME}"
fi
IFS=, read -r -a cluster_arns <<<"${EVENTS_CLUSTER_ARNS// /}"
for arn in "${cluster_arns[@]}"; do
	[[ -z "$arn" || "$arn" =~ ^arn:[a-z-]+:ecs:[a-z0-9-]+:[0-9]{12}:cluster/[A-Za-z0-9_-]+$ ]] ||
		die "EVENTS_CLUSTER_ARNS: not an ECS cluster ARN: $arn"
done
EVENTS_CLUSTER_ARNS_JSON="$(json_list_body "${cluster_arns[@]}")"
[[ -n "$EVENTS_CLUSTER_ARNS_JSON" ]] || die "EVENTS_CLUSTER_ARNS names no cluster"
export EVENTS_CLUSTER_ARNS_JSON

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# ensure_queue NAME ATTRIBUTES_FILE prints the URL of queue NAME, creating it with the attributes
# (a JSON object of strings) or setting them on the queue that exists.
ensure_queue() {
	local name="$1" attributes="$2" url
	if url="$(awscli sqs get-queue-url --queue-name "$name" --query QueueUrl --output text 2>"$tmp/err")"; then
		log "updating SQS queue $name"
		awscli sqs set-queue-attributes --queue-url "$url" --attributes "file://$attributes"
	else
		grep -Eq 'NonExistentQueue|QueueDoesNotExist' "$tmp/err" || die "look up SQS queue $name: $(cat "$tmp/err")"
		log "creating SQS queue $name"
		url="$(awscli sqs create-queue --queue-name "$name" --attributes "file://$attributes" \
			--query QueueUrl --output text)"
	fi
	printf '%s\n' "$url"
}

# queue_arn URL prints the ARN of the queue at URL.
queue_arn() {
	awscli sqs get-queue-attributes --queue-url "$1" --attribute-names QueueArn \
		--query Attributes.QueueArn --output text
}

cat >"$tmp/dlq.json" <<EOF
{"SqsManagedSseEnabled": "true", "MessageRetentionPeriod": "1209600"}
EOF
dlq_url="$(ensure_queue "${EVENTS_QUEUE_NAME}-dlq" "$tmp/dlq.json")"
dlq_arn="$(queue_arn "$dlq_url")"

redrive="$(json_string "{\"deadLetterTargetArn\":\"${dlq_arn}\",\"maxReceiveCount\":5}")"
cat >"$tmp/queue.json" <<EOF
{"SqsManagedSseEnabled": "true", "VisibilityTimeout": "60", "MessageRetentionPeriod": "86400",
 "ReceiveMessageWaitTimeSeconds": "20", "RedrivePolicy": ${redrive}}
EOF
queue_url="$(ensure_queue "$EVENTS_QUEUE_NAME" "$tmp/queue.json")"
queue_arn="$(queue_arn "$queue_url")"

# ensure_rule NAME PATTERN_TEMPLATE DESCRIPTION creates or updates rule NAME on the default event
# bus with the rendered pattern and prints its ARN.
ensure_rule() {
	local name="$1" pattern="$2" description="$3"
	render_to "$pattern" "$tmp/pattern.json"
	log "putting EventBridge rule $name"
	awscli events put-rule --name "$name" --event-pattern "file://$tmp/pattern.json" --state ENABLED \
		--description "$description" --query RuleArn --output text
}

ecs_rule="${EVENTS_RULE_PREFIX}-ecs-task-state-change"
cloudmap_rule="${EVENTS_RULE_PREFIX}-cloud-map-instance-change"
ecs_rule_arn="$(ensure_rule "$ecs_rule" "$ECS_SD_DEPLOY_DIR/events/ecs-task-state-change.json" \
	"ecs-sd event mode - ECS task state changes of the watched clusters")"
cloudmap_rule_arn="$(ensure_rule "$cloudmap_rule" "$ECS_SD_DEPLOY_DIR/events/cloud-map-instance-change.json" \
	"ecs-sd event mode - Cloud Map RegisterInstance and DeregisterInstance calls (CloudTrail)")"

# The policy first, then the targets: a rule never sends to a queue that would refuse it.
export EVENTS_QUEUE_ARN="$queue_arn" EVENTS_ECS_RULE_ARN="$ecs_rule_arn" EVENTS_CLOUDMAP_RULE_ARN="$cloudmap_rule_arn"
policy="$(render "$ECS_SD_DEPLOY_DIR/iam/events-queue-policy.json")"
printf '{"Policy": %s}\n' "$(json_string "$policy")" >"$tmp/policy.json"
awscli sqs set-queue-attributes --queue-url "$queue_url" --attributes "file://$tmp/policy.json"
for rule in "$ecs_rule" "$cloudmap_rule"; do
	failed="$(awscli events put-targets --rule "$rule" --targets "Id=ecs-sd-events,Arn=${queue_arn}" \
		--query FailedEntryCount --output text)"
	[[ "$failed" == 0 ]] || die "rule $rule: EventBridge refused the queue $queue_arn as its target"
done

# Cloud Map's calls reach EventBridge only through a trail that logs management events.
trails="$(awscli cloudtrail describe-trails --query 'trailList[].Name' --output text 2>&1)" ||
	trails="(cannot list trails: $trails)"
if [[ -z "$trails" || "$trails" == "None" ]]; then
	log "warning: no CloudTrail trail in $AWS_REGION: Cloud Map registrations will not arrive as events" \
		"(ECS task events and the 5-minute resync still find them); see deploy/README.md, Event mode"
else
	log "CloudTrail trails: $trails (Cloud Map's calls reach EventBridge through one that logs management events)"
fi

emit EVENTS_QUEUE_URL "$queue_url"
emit EVENTS_QUEUE_ARN "$queue_arn"
emit EVENTS_DEAD_LETTER_QUEUE_URL "$dlq_url"
emit EVENTS_DEAD_LETTER_QUEUE_ARN "$dlq_arn"
emit EVENTS_ECS_RULE_ARN "$ecs_rule_arn"
emit EVENTS_CLOUDMAP_RULE_ARN "$cloudmap_rule_arn"
