#!/usr/bin/env bash
# Runs the ecs-sd demo (cmd/demo): the whole pipeline on this machine — moto standing in for AWS,
# web app tasks and a node exporter registered in Cloud Map as ECS would, ecs-sd, Prometheus and a
# second Prometheus standing in for Amazon Managed Service for Prometheus — with a status screen.
# `make demo` installs the dependencies and builds first. State and logs go to .demo/.
#
# Environment: DEMO_DURATION=<seconds> stops it by itself after that long; it then exits 0 only if
# every seed query returned data. DEMO_SHARDS=<N> runs N Prometheus agents, each on one http_sd
# shard of ecs-sd, instead of one Prometheus. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Python tools, when make deps had to install them (scripts/install-deps.sh).
export PATH="$PWD/.venv/bin:$PATH"
if [[ ! -x bin/demo || ! -x bin/ecs-sd || ! -x bin/webapp ]]; then
	make build
fi
exec bin/demo "$@"
