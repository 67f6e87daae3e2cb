#!/usr/bin/env bash
# Step 2 of the CLI path: the Amazon Managed Service for Prometheus workspace (unless WORKSPACE_ID
# names one) and the two SSM parameters ecs-sd reads:
#   - the list of Cloud Map namespaces to discover (StringList, comma-separated names or ids);
#   - the whole Prometheus configuration, rendered from a template in deploy/prometheus/ with
#     ${AWS_REGION} and ${WORKSPACE_ID} filled in. Comment and blank lines are dropped so that the
#     value stays under the 4 KB standard tier. Writes ask for Intelligent-Tiering: Parameter
#     Store keeps the parameter standard unless the value needs the Advanced tier (up to 8 KB,
#     charged). A write never asks for Standard, which an Advanced parameter cannot go back to.
#
# Environment:
#   AWS_REGION                           required (or AWS_DEFAULT_REGION)
#   AWS_ENDPOINT_URL                     optional
#   WORKSPACE_ID                         an existing AMP workspace (ws-...); when empty, the
#                                        workspace with alias WORKSPACE_ALIAS (default ecs-sd) is
#                                        reused or created
#   DISCOVERY_NAMESPACES                 default $NAMESPACE_NAME (default ecs-services)
#   DISCOVERY_NAMESPACES_PARAMETER_NAME  default ECS-ServiceDiscovery-Namespaces
#   PROMETHEUS_CONFIG_PARAMETER_NAME     default ECS-Prometheus-Configuration
#   PROMETHEUS_CONFIG_TEMPLATE           default deploy/prometheus/prometheus-file-sd.yml
#
# Prints (stdout, for eval): WORKSPACE_ID, WORKSPACE_ARN, WORKSPACE_REMOTE_WRITE_URL, the two
# parameter names and their ARNs (DISCOVERY_NAMESPACES_PARAMETER_ARN, PROMETHEUS_CONFIG_PARAMETER_ARN).
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env AWS_REGION
DISCOVERY_NAMESPACES="${DISCOVERY_NAMESPACES:-$NAMESPACE_NAME}"
PROMETHEUS_CONFIG_TEMPLATE="${PROMETHEUS_CONFIG_TEMPLATE:-$ECS_SD_DEPLOY_DIR/prometheus/prometheus-file-sd.yml}"
WORKSPACE_ALIAS="${WORKSPACE_ALIAS:-ecs-sd}"

if [[ -z "${WORKSPACE_ID:-}" ]]; then
	WORKSPACE_ID="$(awscli amp list-workspaces --alias "$WORKSPACE_ALIAS" \
		--query "workspaces[?alias=='${WORKSPACE_ALIAS}'] | [0].workspaceId" --output text)"
	if [[ -z "$WORKSPACE_ID" || "$WORKSPACE_ID" == "None" ]]; then
		log "creating AMP workspace with alias $WORKSPACE_ALIAS"
		WORKSPACE_ID="$(awscli amp create-workspace --alias "$WORKSPACE_ALIAS" \
			--query workspaceId --output text)"
	else
		log "reusing AMP workspace $WORKSPACE_ID ($WORKSPACE_ALIAS)"
	fi
fi
emit WORKSPACE_ID "$WORKSPACE_ID"
workspace_arn="$(awscli amp describe-workspace --workspace-id "$WORKSPACE_ID" \
	--query workspace.arn --output text)"
emit WORKSPACE_ARN "$workspace_arn"
emit WORKSPACE_REMOTE_WRITE_URL \
	"https://aps-workspaces.${AWS_REGION}.amazonaws.com/workspaces/${WORKSPACE_ID}/api/v1/remote_write"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# put_parameter NAME TYPE FILE writes FILE's content to the parameter (file:// keeps the CLI from
# fetching values that look like URLs, and keeps newlines).
put_parameter() {
	local name="$1" type="$2" file="$3" size tier
	size="$(wc -c <"$file")"
	if ((size > 8192)); then
		die "parameter $name would hold $size bytes, more than the 8 KB SSM allows"
	elif ((size > 4096)); then
		log "parameter $name holds $size bytes: Parameter Store makes it an Advanced parameter (charged)"
	fi
	tier="$(awscli ssm put-parameter --name "$name" --type "$type" --tier Intelligent-Tiering --overwrite \
		--value "file://$file" --query Tier --output text)"
	log "wrote parameter $name ($type, $size bytes, tier $tier)"
}

printf '%s' "$DISCOVERY_NAMESPACES" >"$tmp/namespaces"
put_parameter "$DISCOVERY_NAMESPACES_PARAMETER_NAME" StringList "$tmp/namespaces"

render_to "$PROMETHEUS_CONFIG_TEMPLATE" "$tmp/prometheus-full.yml"
grep -Ev '^[[:space:]]*(#.*)?$' "$tmp/prometheus-full.yml" >"$tmp/prometheus.yml"
put_parameter "$PROMETHEUS_CONFIG_PARAMETER_NAME" String "$tmp/prometheus.yml"

namespaces_arn="$(awscli ssm get-parameter --name "$DISCOVERY_NAMESPACES_PARAMETER_NAME" \
	--query Parameter.ARN --output text)"
config_arn="$(awscli ssm get-parameter --name "$PROMETHEUS_CONFIG_PARAMETER_NAME" \
	--query Parameter.ARN --output text)"
emit DISCOVERY_NAMESPACES_PARAMETER_NAME "$DISCOVERY_NAMESPACES_PARAMETER_NAME"
emit DISCOVERY_NAMESPACES_PARAMETER_ARN "$namespaces_arn"
emit PROMETHEUS_CONFIG_PARAMETER_NAME "$PROMETHEUS_CONFIG_PARAMETER_NAME"
emit PROMETHEUS_CONFIG_PARAMETER_ARN "$config_arn"
