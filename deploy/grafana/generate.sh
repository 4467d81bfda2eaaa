#!/usr/bin/env bash
# Rebuilds the committed dashboards (dashboards/*.json) from the jsonnet sources (mixin.libsonnet,
# src/, lib/) with Debian's jsonnet. Deterministic: running it twice gives the same bytes.
#
#   bash deploy/grafana/generate.sh            # write into deploy/grafana/dashboards/
#   bash deploy/grafana/generate.sh OUT_DIR    # write elsewhere (the test diffs the two)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/dashboards}
command -v jsonnet >/dev/null || { echo "generate.sh: jsonnet not found (apt-get install jsonnet)" >&2; exit 1; }
mkdir -p "$out"
# Each file is one JSON document as jsonnet writes it (keys sorted, three-space indent; its own
# writer: std.manifestJsonEx is far slower on documents this size).
# Files that no longer have a source are removed, so a renamed dashboard does not linger.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
jsonnet -J "$here" -J "$here/lib" -J "$here/src" -m "$tmp" \
    -e '(import "mixin.libsonnet").grafanaDashboards' >/dev/null
for f in "$out"/*.json; do
    if [[ -e $f && ! -e $tmp/$(basename "$f") ]]; then rm -f "$f"; fi
done
for f in "$tmp"/*.json; do
    if ! cmp -s "$f" "$out/$(basename "$f")"; then cp "$f" "$out/"; fi
done
ls "$out"/*.json
