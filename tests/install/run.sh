#!/usr/bin/env bash
# Installs a plugmon build tree into a temporary prefix, builds the out-of-tree plugin in this
# folder against it with find_package(plugmon), and runs it with no agent reachable.
# Usage: tests/install/run.sh BUILD_DIR [extra cmake arguments for the plugin build...]
set -euo pipefail

if (($# < 1)); then
    echo "usage: $0 BUILD_DIR [cmake args...]" >&2
    exit 2
fi
build_dir=$1
shift
src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/plugmon-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "== install $build_dir into $tmp/prefix"
# Only the probe and the executables: the system component writes to absolute paths.
cmake --install "$build_dir" --prefix "$tmp/prefix" --component probe
cmake --install "$build_dir" --prefix "$tmp/prefix" --component agent

for f in include/plugmon/probe.hpp include/plugmon/layout.hpp; do
    [[ -f $tmp/prefix/$f ]] || { echo "FAIL: $f not installed" >&2; exit 1; }
done
config=$(find "$tmp/prefix" -name plugmonConfig.cmake -print -quit)
[[ -n $config ]] || { echo "FAIL: plugmonConfig.cmake not installed" >&2; exit 1; }

echo "== configure and build the plugin against $tmp/prefix"
cmake -S "$src_dir" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
cmake --build "$tmp/build" -j2

echo "== run it with an empty runtime directory (no agent)"
mkdir "$tmp/run"
PLUGMON_RUNTIME_DIR="$tmp/run" "$tmp/build/out_of_tree_plugin"
echo "== out-of-tree plugin: OK"
