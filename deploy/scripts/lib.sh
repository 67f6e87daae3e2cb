# shellcheck shell=bash
# Shared helpers for the ecs-sd deployment scripts. Source it; do not run it.
#
# Conventions of every script here:
#   - settings come from environment variables; a missing required one stops the script with a
#     message naming it (require_env);
#   - progress goes to stderr, results go to stdout as `export NAME='value'` lines, so that
#     `eval "$(deploy/scripts/01-cloudmap.sh)"` hands them to the next script;
#   - every AWS call goes through `awscli`, which adds --region and, when AWS_ENDPOINT_URL is set,
#     --endpoint-url (AWS CLI v1 ignores AWS_REGION, and older v1 releases ignore
#     AWS_ENDPOINT_URL; passing both explicitly works with v1 and v2).

set -euo pipefail
# Command substitutions exit on the first failing command too (bash >= 4.4).
shopt -s inherit_errexit

ECS_SD_DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ECS_SD_DEPLOY_DIR

# log prints a progress line on stderr.
log() {
	printf '%s: %s\n' "$(basename "$0")" "$*" >&2
}

# die prints an error on stderr and exits 1.
die() {
	printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2
	exit 1
}

# require_env NAME... fails when any NAME is unset or empty, naming all of them at once.
require_env() {
	local missing=() name
	for name in "$@"; do
		if [[ -z "${!name:-}" ]]; then
			missing+=("$name")
		fi
	done
	if ((${#missing[@]} > 0)); then
		die "missing required environment variable(s): ${missing[*]} (see deploy/README.md)"
	fi
}

# emit NAME VALUE prints `export NAME='VALUE'` on stdout (single quotes escaped) and sets it here.
# An empty VALUE (or "None", the CLI's null) is an error: it means the command that computed it
# failed, which `emit NAME "$(cmd)"` would otherwise hide from set -e.
emit() {
	local name="$1" value="${2:-}"
	if [[ -z "$value" || "$value" == "None" ]]; then
		die "no value for $name (the command computing it failed?)"
	fi
	printf -v "$name" '%s' "$value"
	export "${name?}"
	printf "export %s='%s'\n" "$name" "${value//\'/\'\\\'\'}"
}

# Region: AWS_REGION, else AWS_DEFAULT_REGION.
if [[ -z "${AWS_REGION:-}" && -n "${AWS_DEFAULT_REGION:-}" ]]; then
	AWS_REGION="$AWS_DEFAULT_REGION"
fi
export AWS_REGION="${AWS_REGION:-}"

# awscli runs the AWS CLI with --region and, when AWS_ENDPOINT_URL is set, --endpoint-url.
awscli() {
	command -v aws >/dev/null 2>&1 || die "the aws CLI is not installed (https://aws.amazon.com/cli/)"
	[[ -n "$AWS_REGION" ]] || die "missing required environment variable(s): AWS_REGION"
	local global=(--region "$AWS_REGION")
	if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
		global+=(--endpoint-url "$AWS_ENDPOINT_URL")
	fi
	aws "${global[@]}" "$@"
}

# aws_account_id prints AWS_ACCOUNT_ID, asking STS when it is not set.
aws_account_id() {
	if [[ -z "${AWS_ACCOUNT_ID:-}" ]]; then
		AWS_ACCOUNT_ID="$(awscli sts get-caller-identity --query Account --output text)"
		export AWS_ACCOUNT_ID
	fi
	printf '%s\n' "$AWS_ACCOUNT_ID"
}

# aws_partition prints the partition of AWS_REGION (aws, aws-cn or aws-us-gov).
aws_partition() {
	case "$AWS_REGION" in
	cn-*) echo aws-cn ;;
	us-gov-*) echo aws-us-gov ;;
	*) echo aws ;;
	esac
}

# render FILE prints FILE with every ${NAME} replaced by the value of the environment variable
# NAME. Only ${NAME} with NAME a shell identifier is a placeholder: $1, $$ and ${1} are copied as
# they are (Prometheus relabel rules use $1). A placeholder whose variable is unset or empty is an
# error naming every such variable. Pure bash, so that envsubst (gettext) is not needed.
render() {
	local file="$1" content rest out="" name missing=()
	[[ -r "$file" ]] || die "cannot read template $file"
	# $(...) strips trailing newlines: keep them with a sentinel.
	content="$(cat -- "$file" && printf x)"
	content="${content%x}"
	rest="$content"
	# '${' is the literal placeholder opener, not an expansion.
	# shellcheck disable=SC2016
	while [[ "$rest" == *'${'* ]]; do
		out+="${rest%%\$\{*}"
		rest="${rest#*\$\{}"
		name="${rest%%\}*}"
		if [[ "$rest" == *'}'* && "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
			if [[ -z "${!name:-}" ]]; then
				missing+=("$name")
			else
				out+="${!name}"
			fi
			rest="${rest#*\}}"
		else
			# shellcheck disable=SC2016
			out+='${'
		fi
	done
	out+="$rest"
	if ((${#missing[@]} > 0)); then
		# Deduplicate for the message.
		mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
		die "template $file needs environment variable(s): ${missing[*]}"
	fi
	printf '%s' "$out"
}

# render_to FILE OUT renders FILE into OUT (see render).
render_to() {
	local rendered
	rendered="$(render "$1" && printf x)"
	printf '%s' "${rendered%x}" >"$2"
}

# csv_to_shorthand_list prints the comma-separated words in $1 as a CLI shorthand list: [a,b].
csv_to_shorthand_list() {
	local IFS=, item out=()
	for item in $1; do
		item="${item// /}"
		[[ -n "$item" ]] && out+=("$item")
	done
	local joined
	joined="$(printf '%s,' "${out[@]}")"
	printf '[%s]' "${joined%,}"
}

# json_list_body prints its arguments as the body of a JSON list of strings: "a", "b" (empty
# arguments are left out). The IAM policy templates paste it between brackets.
json_list_body() {
	local item body=""
	for item in "$@"; do
		[[ -n "$item" ]] && body+="${body:+, }\"$item\""
	done
	printf '%s' "$body"
}

# json_string prints $1 as a JSON string, quotes included (for a JSON document held in a string
# attribute, such as a queue's Policy).
json_string() {
	local s="$1"
	s="${s//\\/\\\\}"
	s="${s//\"/\\\"}"
	s="${s//$'\n'/\\n}"
	s="${s//$'\t'/\\t}"
	s="${s//$'\r'/\\r}"
	printf '"%s"' "$s"
}

# ecr_repository_arn IMAGE prints the ARN of the ECR repository IMAGE comes from
# (ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/REPOSITORY[:TAG|@DIGEST]), or nothing for an image
# of another registry.
ecr_repository_arn() {
	local re='^([0-9]{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/([^:@]+)([:@].*)?$'
	if [[ "$1" =~ $re ]]; then
		local partition=aws
		case "${BASH_REMATCH[2]}" in
		cn-*) partition=aws-cn ;;
		us-gov-*) partition=aws-us-gov ;;
		esac
		printf 'arn:%s:ecr:%s:%s:repository/%s\n' "$partition" "${BASH_REMATCH[2]}" "${BASH_REMATCH[1]}" "${BASH_REMATCH[4]}"
	fi
}

# Names shared by several steps, with their defaults (override any of them in the environment).
PROMETHEUS_IMAGE="${PROMETHEUS_IMAGE:-quay.io/prometheus/prometheus:v3.5.0}"
NODE_EXPORTER_IMAGE="${NODE_EXPORTER_IMAGE:-quay.io/prometheus/node-exporter:v1.9.1}"
NAMESPACE_NAME="${NAMESPACE_NAME:-ecs-services}"
CLUSTER_NAME="${CLUSTER_NAME:-ecs-sd}"
DISCOVERY_NAMESPACES_PARAMETER_NAME="${DISCOVERY_NAMESPACES_PARAMETER_NAME:-ECS-ServiceDiscovery-Namespaces}"
PROMETHEUS_CONFIG_PARAMETER_NAME="${PROMETHEUS_CONFIG_PARAMETER_NAME:-ECS-Prometheus-Configuration}"
PROMETHEUS_LOG_GROUP="${PROMETHEUS_LOG_GROUP:-/ecs/ecs-sd/prometheus}"
WEBAPP_LOG_GROUP="${WEBAPP_LOG_GROUP:-/ecs/ecs-sd/webapp}"
NODE_EXPORTER_LOG_GROUP="${NODE_EXPORTER_LOG_GROUP:-/ecs/ecs-sd/node-exporter}"
export PROMETHEUS_IMAGE NODE_EXPORTER_IMAGE NAMESPACE_NAME CLUSTER_NAME DISCOVERY_NAMESPACES_PARAMETER_NAME PROMETHEUS_CONFIG_PARAMETER_NAME \
	PROMETHEUS_LOG_GROUP WEBAPP_LOG_GROUP NODE_EXPORTER_LOG_GROUP
