#!/usr/bin/env bash
# Step 5 of the CLI path: the CloudWatch log groups (with retention) and the three task
# definitions, rendered from deploy/task-definitions/*.json (every ${NAME} replaced by the
# environment variable NAME; a missing one is an error) and registered.
#
# Environment:
#   AWS_REGION                  required (or AWS_DEFAULT_REGION)
#   ECS_SD_IMAGE                required, the ecs-sd image (built from the repository's Dockerfile)
#   WEBAPP_IMAGE                required, the sample web app image (cmd/webapp)
#   EXECUTION_ROLE_ARN          required (step 4)
#   PROMETHEUS_TASK_ROLE_ARN    required (step 4)
#   EVENTS_QUEUE_URL            required (step 3): ecs-sd's --events.queue-url (with
#                               --refresh.interval=5m, task-definitions/prometheus.json)
#   PROMETHEUS_IMAGE            default quay.io/prometheus/prometheus:v3.5.0 (3.x signs remote
#                               write with SigV4 itself)
#   NODE_EXPORTER_IMAGE         default quay.io/prometheus/node-exporter:v1.9.1
#   WEBAPP_LOAD_RPS             default 5 (requests per second of the web app's load generator)
#   LOG_RETENTION_DAYS          default 14
#   DISCOVERY_NAMESPACES_PARAMETER_NAME, PROMETHEUS_CONFIG_PARAMETER_NAME, *_LOG_GROUP: see lib.sh
#
# Prints (stdout, for eval): PROMETHEUS_TASK_DEFINITION_ARN, WEBAPP_TASK_DEFINITION_ARN,
# NODE_EXPORTER_TASK_DEFINITION_ARN.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export WEBAPP_LOAD_RPS="${WEBAPP_LOAD_RPS:-5}"
LOG_RETENTION_DAYS="${LOG_RETENTION_DAYS:-14}"
require_env AWS_REGION ECS_SD_IMAGE WEBAPP_IMAGE EXECUTION_ROLE_ARN PROMETHEUS_TASK_ROLE_ARN

# Render first: a template naming a setting that is missing stops the step before it changes
# anything.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for name in prometheus webapp node-exporter; do
	render_to "$ECS_SD_DEPLOY_DIR/task-definitions/$name.json" "$tmp/$name.json"
done

for group in "$PROMETHEUS_LOG_GROUP" "$WEBAPP_LOG_GROUP" "$NODE_EXPORTER_LOG_GROUP"; do
	existing="$(awscli logs describe-log-groups --log-group-name-prefix "$group" \
		--query "logGroups[?logGroupName=='${group}'].logGroupName" --output text)"
	if [[ -z "$existing" ]]; then
		log "creating log group $group"
		awscli logs create-log-group --log-group-name "$group"
	fi
	awscli logs put-retention-policy --log-group-name "$group" --retention-in-days "$LOG_RETENTION_DAYS"
done

# register NAME registers the rendered deploy/task-definitions/NAME.json; prints its ARN.
register() {
	local name="$1" arn
	arn="$(awscli ecs register-task-definition --cli-input-json "file://$tmp/$name.json" \
		--query taskDefinition.taskDefinitionArn --output text)"
	log "registered $arn"
	printf '%s\n' "$arn"
}

prometheus_td="$(register prometheus)"
webapp_td="$(register webapp)"
node_exporter_td="$(register node-exporter)"
emit PROMETHEUS_TASK_DEFINITION_ARN "$prometheus_td"
emit WEBAPP_TASK_DEFINITION_ARN "$webapp_td"
emit NODE_EXPORTER_TASK_DEFINITION_ARN "$node_exporter_td"
