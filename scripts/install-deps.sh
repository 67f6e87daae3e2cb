#!/usr/bin/env bash
# Installs (when missing) and checks what ecs-sd's tests and demo run against: Prometheus and the
# node exporter from Debian's packages, and Python's moto_server, aws CLI and cfn-lint (which
# cannot be installed here: they must already be on PATH). Fails loudly instead of letting tests skip.
set -euo pipefail

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-node-exporter >/dev/null 2>&1 || need_apt+=(prometheus-node-exporter)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: installing ${need_apt[*]} from Debian's packages"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

missing=0
for cmd in prometheus promtool prometheus-node-exporter moto_server aws cfn-lint; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    echo "install-deps: '$cmd' not found on PATH" >&2
    missing=1
  fi
done
if [ "$missing" -ne 0 ]; then
  echo "install-deps: moto_server, aws and cfn-lint come from Python packages (pip install 'moto[server]' awscli cfn-lint)" >&2
  exit 1
fi
echo "install-deps: $(prometheus --version 2>&1 | head -n1); moto $(python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?')"
