# shellcheck shell=bash
# Sourced (with no arguments) by the install tests: takes BUILD_DIR from their arguments (the rest,
# extra cmake arguments for the consumer project, stay in "$@"), and installs every component of
# that build tree into $prefix, a temporary directory removed at exit (the log in $tmp/install.log).
# Sets build_dir, src_dir (this folder), tmp and prefix.
if (($# < 1)); then
    echo "usage: $0 BUILD_DIR [cmake args...]" >&2
    exit 2
fi
build_dir=$1
shift
# shellcheck disable=SC2034  # read by the scripts that source this one
src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/plugmon-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

echo "== cmake --install $build_dir --prefix $prefix"
cmake --install "$build_dir" --prefix "$prefix" >"$tmp/install.log"
