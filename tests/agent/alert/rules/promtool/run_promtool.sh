#!/usr/bin/env bash
# Runs promtool over the shipped Prometheus rules: `check rules`, then `test rules` on the unit
# tests beside this script. Exits 77 (ctest: skipped) when promtool is not installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../../.." && pwd)
if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool is not installed (Debian package prometheus): skipped"
    exit 77
fi
promtool check rules "$root/deploy/plugmon-rules.yml"
promtool test rules "$here"/*_test.yml "$@"
