#!/usr/bin/env bash
# Installs the Debian packages plugmon needs to build, test and run. Idempotent: when every
# package is already installed it only checks (no apt-get at all), so reruns are fast.
#
#   bash .ci/deps.sh          # run it
#   source .ci/deps.sh        # from the other scripts (quickstart, run-all)
#
# PLUGMON_SKIP_DEPS=1 skips it (packages managed by other means).

PLUGMON_DEB_PACKAGES=(
    build-essential cmake pkg-config g++ clang clang-format libclang-rt-14-dev
    libboost-dev libboost-system-dev libpqxx-dev prometheus-cpp-dev libspdlog-dev libfmt-dev
    libtomlplusplus-dev libcli11-dev nlohmann-json3-dev zlib1g-dev
    libgtest-dev libgmock-dev libbenchmark-dev
    postgresql prometheus prometheus-alertmanager
    curl procps ca-certificates python3 python3-yaml jsonnet systemd
    chromium python3-websocket fonts-dejavu-core
    libsnappy-dev libssl-dev postgresql-15 postgresql-server-dev-15 victoria-metrics
)

# Prints the packages of PLUGMON_DEB_PACKAGES that are not installed, one a line.
plugmon_missing_packages() {
    local -A installed=()
    local name status
    # dpkg-query exits 1 when some package is unknown; what it printed is still right.
    while read -r name status; do
        [[ $status == installed ]] && installed[$name]=1
    done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PLUGMON_DEB_PACKAGES[@]}" \
        2>/dev/null || true)
    for name in "${PLUGMON_DEB_PACKAGES[@]}"; do
        [[ -n ${installed[$name]:-} ]] || printf '%s\n' "$name"
    done
}

plugmon_install_deps() {
    if [[ ${PLUGMON_SKIP_DEPS:-0} == 1 ]]; then
        echo "deps: skipped (PLUGMON_SKIP_DEPS=1)"
        return 0
    fi
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        echo "deps: this script needs Debian 12 (apt-get, dpkg-query). Install these packages" \
            "by other means, then rerun with PLUGMON_SKIP_DEPS=1:" >&2
        echo "  ${PLUGMON_DEB_PACKAGES[*]}" >&2
        return 1
    fi

    local missing=()
    mapfile -t missing < <(plugmon_missing_packages)
    if ((${#missing[@]} == 0)); then
        echo "deps: all ${#PLUGMON_DEB_PACKAGES[@]} packages are installed"
        return 0
    fi
    echo "deps: missing ${missing[*]}"

    local sudo=()
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "deps: not root and sudo is not installed. As root, run:" >&2
            echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
            return 1
        fi
    fi
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q
        -o DPkg::Lock::Timeout=300)
    echo "deps: apt-get update"
    if ! "${apt[@]}" update; then
        echo "deps: apt-get update failed (network or apt sources?)" >&2
        return 1
    fi
    echo "deps: apt-get install ${PLUGMON_DEB_PACKAGES[*]}"
    if ! "${apt[@]}" install -y --no-install-recommends "${PLUGMON_DEB_PACKAGES[@]}"; then
        echo "deps: apt-get install failed" >&2
        return 1
    fi
    mapfile -t missing < <(plugmon_missing_packages)
    if ((${#missing[@]} != 0)); then
        echo "deps: still missing after install: ${missing[*]}" >&2
        return 1
    fi
    echo "deps: all ${#PLUGMON_DEB_PACKAGES[@]} packages are installed"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    plugmon_install_deps
else
    plugmon_install_deps || return 1
fi
