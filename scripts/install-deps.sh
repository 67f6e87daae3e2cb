#!/usr/bin/env bash
# Installs (when missing) and checks what ecs-sd's tests and demo run against, so that `make test`
# and `make demo` need nothing else on a fresh Debian or Ubuntu machine:
#
#   - prometheus, promtool, prometheus-node-exporter: Debian's packages (apt-get).
#   - chromium: Debian's package (apt-get), the headless browser of the status page's test.
#   - moto_server, aws, cfn-lint: the Python packages pinned in scripts/requirements.txt. When all
#     three are on PATH they are used as they are (their versions are printed); when one is missing,
#     the pinned versions are installed into the project's virtual environment .venv/, whose bin/
#     the Makefile puts first on PATH.
#
# Every network step is bounded: pip waits at most PIP_TIMEOUT seconds (default 15) for a
# connection and does not retry, and the whole install is stopped after INSTALL_TIMEOUT seconds
# (default 600). It fails loudly, naming what is missing, instead of letting tests skip.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
requirements=scripts/requirements.txt
pip_timeout=${PIP_TIMEOUT:-15}
install_timeout=${INSTALL_TIMEOUT:-600}
python_tools=(moto_server aws cfn-lint)
export PATH="$PWD/$venv/bin:$PATH"

say() { echo "install-deps: $*"; }
fail() {
	echo "install-deps: $*" >&2
	exit 1
}

missing() {
	local cmd
	for cmd in "$@"; do
		command -v "$cmd" >/dev/null 2>&1 || echo "$cmd"
	done
}

apt_install() {
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	say "installing $* from the distribution's packages"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The Debian packages.
need_apt=()
[ -z "$(missing prometheus promtool)" ] || need_apt+=(prometheus)
[ -z "$(missing prometheus-node-exporter)" ] || need_apt+=(prometheus-node-exporter)
[ -z "$(missing chromium)" ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
	apt_install "${need_apt[@]}"
fi

# index_reachable says why pip could not reach the package index, if it cannot.
index_reachable() {
	timeout $((pip_timeout + 5)) python3 - "$pip_timeout" <<-'EOF' || true
		import os, sys, urllib.request
		url = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/") + "/moto/"
		try:
		    urllib.request.urlopen(url, timeout=float(sys.argv[1])).close()
		except Exception as e:
		    print(f"The package index {url} cannot be reached ({e}).", end=" ")
	EOF
}

# The Python tools: from PATH, else from .venv.
absent=$(missing "${python_tools[@]}" | tr '\n' ' ')
if [ -n "$absent" ]; then
	say "not on PATH: ${absent% }; installing $(grep -v -e '^#' -e '^$' "$requirements" | tr '\n' ' ')into $venv/"
	if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
		apt_install python3 python3-venv
	fi
	created=""
	if [ ! -x "$venv/bin/pip" ]; then
		rm -rf "$venv"
		timeout 120 python3 -m venv "$venv" || fail "python3 -m venv $venv failed"
		created=1
	fi
	start=$SECONDS
	status=0
	timeout "$install_timeout" "$venv/bin/pip" install --quiet --disable-pip-version-check \
		--timeout "$pip_timeout" --retries 0 -r "$requirements" || status=$?
	if [ "$status" -ne 0 ]; then
		reason="pip exited with status $status after $((SECONDS - start))s"
		[ "$status" -ne 124 ] || reason="pip did not finish within ${install_timeout}s"
		# A half-made environment must not shadow python3 on the Makefile's PATH.
		[ -z "$created" ] || rm -rf "$venv"
		fail "could not install $requirements into $venv/ ($reason)." \
			"$(index_reachable)Put ${absent% } on PATH, or make the index reachable (PIP_INDEX_URL names a mirror)."
	fi
	absent=$(missing "${python_tools[@]}" | tr '\n' ' ')
	[ -z "$absent" ] || fail "$venv/ holds no ${absent% } after installing $requirements"
fi

still=$(missing prometheus promtool prometheus-node-exporter chromium | tr '\n' ' ')
[ -z "$still" ] || fail "still not on PATH: ${still% }"

# moto_server has no --version: ask the Python that runs it (a pyenv shim names it through pyenv).
moto_version() {
	local exe python
	exe=$(command -v moto_server)
	if [[ $exe == */shims/* ]] && command -v pyenv >/dev/null 2>&1; then
		exe=$(pyenv which moto_server)
	fi
	python=$(sed -n '1s/^#![[:space:]]*//p' "$exe")
	# shellcheck disable=SC2086 # the interpreter line may be "/usr/bin/env python3"
	${python:-python3} -c 'import moto; print(moto.__version__)' 2>/dev/null || echo unknown
}

moto=$(moto_version)
pinned_moto=$(sed -n 's/^moto\[server\]==//p' "$requirements")
say "$(prometheus --version 2>&1 | head -n1)"
say "$(prometheus-node-exporter --version 2>&1 | head -n1)"
say "$(chromium --version 2>/dev/null | head -n1)"
say "moto $moto ($(command -v moto_server))"
say "$(aws --version 2>&1 | head -n1) ($(command -v aws))"
say "$(cfn-lint --version 2>&1 | head -n1) ($(command -v cfn-lint))"
if [ "$moto" != "$pinned_moto" ]; then
	say "warning: the tests are written for moto $pinned_moto ($requirements), this is moto $moto" >&2
fi
