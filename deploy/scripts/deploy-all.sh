#!/usr/bin/env bash
# Runs the six steps of the CLI path in order, handing each step's outputs to the next, and
# prints every output at the end (`export NAME='value'` lines, for eval). Settings are those of
# the steps (see each script's header); ECS_SD_IMAGE and WEBAPP_IMAGE are required.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env AWS_REGION ECS_SD_IMAGE WEBAPP_IMAGE
dir="$(dirname "${BASH_SOURCE[0]}")"
outputs=""
for step in 01-cloudmap 02-ssm-parameters 03-events 04-iam-roles 05-task-definitions 06-services; do
	log "step $step"
	step_out="$(bash "$dir/$step.sh")" || die "step $step failed"
	eval "$step_out"
	outputs+="$step_out"$'\n'
done
printf '%s' "$outputs"
