#!/usr/bin/env bash
# Installs a plugmon build tree into a temporary prefix, builds the out-of-tree plugin in this
# folder against it with find_package(plugmon), and runs it with no agent reachable.
# Usage: tests/install/run.sh BUILD_DIR [extra cmake arguments for the plugin build...]
set -euo pipefail

# Every component: the system one, too, lands under the prefix (see cmake/install.cmake).
# shellcheck source=tests/install/prefix.sh
. "$(dirname "${BASH_SOURCE[0]}")/prefix.sh"

for f in include/plugmon/probe.hpp include/plugmon/layout.hpp; do
    [[ -f $prefix/$f ]] || { echo "FAIL: $f not installed" >&2; exit 1; }
done
config=$(find "$prefix" -name plugmonConfig.cmake -print -quit)
[[ -n $config ]] || { echo "FAIL: plugmonConfig.cmake not installed" >&2; exit 1; }

echo "== configure and build the plugin against $prefix"
cmake -S "$src_dir" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
cmake --build "$tmp/build" -j2

echo "== run it with an empty runtime directory (no agent)"
mkdir "$tmp/run"
PLUGMON_RUNTIME_DIR="$tmp/run" "$tmp/build/out_of_tree_plugin"
echo "== out-of-tree plugin: OK"
