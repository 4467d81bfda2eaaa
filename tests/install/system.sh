#!/usr/bin/env bash
# Installs a plugmon build tree with `cmake --install BUILD --prefix DIR` (every component, as the
# install steps in the README do) and checks the installed tree: the executables run from there,
# the probe's headers, library and CMake package (found by find_package), the systemd unit naming
# the prefix, the sysusers entry; then `systemd-analyze verify` on the installed unit.
# Usage: tests/install/system.sh BUILD_DIR [extra cmake arguments for the find_package consumer...]
set -euo pipefail

# shellcheck source=tests/install/prefix.sh
. "$(dirname "${BASH_SOURCE[0]}")/prefix.sh"
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

echo "== the installed tree"
for f in bin/plugmon-agent bin/plugmonctl; do
    [[ -x $prefix/$f ]] || fail "$f not installed (or not executable)"
done
for f in include/plugmon/probe.hpp include/plugmon/layout.hpp include/plugmon/runtime_dir.hpp \
    lib/systemd/system/plugmon-agent.service lib/sysusers.d/plugmon.conf; do
    [[ -f $prefix/$f ]] || fail "$f not installed"
done
[[ -n $(find "$prefix" -name 'libplugmon_probe.so*' -print -quit) ]] ||
    fail "libplugmon_probe.so not installed"
config=$(find "$prefix" -name plugmonConfig.cmake -print -quit)
[[ -n $config ]] || fail "plugmonConfig.cmake not installed"
if grep -q '^PLUGMON_INSTALL_SYSTEM_FILES:BOOL=ON' "$build_dir/CMakeCache.txt"; then
    for f in etc/plugmon/plugmon.toml etc/plugmon/plugmon.toml.example; do
        [[ -f $prefix/$f ]] || fail "$f not installed (PLUGMON_INSTALL_SYSTEM_FILES=ON)"
    done
fi
# Nothing outside the prefix: every path the install log names is under it.
if grep -E '^-- (Installing|Up-to-date): ' "$tmp/install.log" | grep -v -F -- ": $prefix/"; then
    fail "the install wrote outside the prefix (lines above)"
fi

echo "== the installed executables run from the prefix (they find libplugmon_probe beside them)"
"$prefix/bin/plugmon-agent" --help >/dev/null || fail "plugmon-agent --help failed"
"$prefix/bin/plugmonctl" --help >/dev/null || fail "plugmonctl --help failed"

echo "== the unit names the prefix"
unit=$prefix/lib/systemd/system/plugmon-agent.service
grep -qxF "ExecStart=$prefix/bin/plugmon-agent --config $prefix/etc/plugmon/plugmon.toml" "$unit" ||
    fail "ExecStart does not name $prefix/bin/plugmon-agent and $prefix/etc/plugmon: $(grep ExecStart= "$unit")"
grep -qx "Type=notify" "$unit" || fail "the installed unit is not Type=notify"
grep -qE '^u plugmon ' "$prefix/lib/sysusers.d/plugmon.conf" || fail "sysusers entry has no user plugmon"

echo "== systemd-analyze verify $unit"
if command -v systemd-analyze >/dev/null; then
    # It only warns about unknown keys and bad values: any line naming the unit fails too.
    if ! SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$unit" >"$tmp/verify.log" 2>&1; then
        cat "$tmp/verify.log" >&2
        fail "systemd-analyze verify failed"
    elif grep -F "plugmon-agent.service" "$tmp/verify.log" >&2; then
        fail "systemd-analyze verify warned about the unit (lines above)"
    fi
else
    echo "SKIP: systemd-analyze is not installed (Debian package systemd)"
fi

echo "== find_package(plugmon) from a consumer project"
cmake -S "$src_dir/find_package" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" "$@" \
    >"$tmp/consumer.log" 2>&1 || { cat "$tmp/consumer.log" >&2; fail "find_package(plugmon) failed"; }

if ((failures > 0)); then
    echo "== install: $failures check(s) failed" >&2
    exit 1
fi
echo "== install into a prefix: OK"
