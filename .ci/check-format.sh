#!/usr/bin/env bash
# Fails when a C++ source or header in agent/, probe/ or include/ differs from .clang-format, and
# prints the first differences. `bash .ci/check-format.sh --fix` reformats them instead.
set -euo pipefail
cd "$(dirname "$0")/.."
fmt=$(command -v clang-format-14 || command -v clang-format || true)
if [[ -z $fmt ]]; then
    echo "check-format: clang-format is not installed (Debian package clang-format)" >&2
    exit 2
fi
mapfile -t files < <(git ls-files agent probe include | grep -E '\.(cpp|hpp|h)$')
if [[ ${1:-} == --fix ]]; then
    "$fmt" -i "${files[@]}"
    exit 0
fi
bad=()
for f in "${files[@]}"; do
    "$fmt" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
    echo "check-format: ${#bad[@]} file(s) differ from .clang-format (fix: bash .ci/check-format.sh --fix):"
    printf '  %s\n' "${bad[@]}"
    "$fmt" --dry-run "${bad[0]}" 2>&1 | head -20
    exit 1
fi
echo "check-format: ${#files[@]} files formatted"
