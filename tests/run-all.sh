#!/usr/bin/env bash
# The test command: installs the dependencies, checks formatting and function length (<= 100 lines),
# builds plugmon, runs the unit, multi-process and integration tests, then the unit and multi-process
# tests and the in-process store writer test (label sanitize) again under ASan+UBSan and TSan, then
# short libFuzzer runs.
#
#   bash tests/run-all.sh                  # everything
#   bash tests/run-all.sh --quick          # default build only (no sanitizer or fuzz builds)
#   bash tests/run-all.sh --no-sanitizers  # same as --quick
#
# Environment: PLUGMON_BUILD_JOBS (default 2), PLUGMON_TEST_JOBS (default 2: parallel ctest
# in the default build), PLUGMON_SAN_TEST_JOBS (default 1: sanitizer builds run tests one at a
# time), PLUGMON_SKIP_DEPS=1 (do not check Debian packages).
set -euo pipefail
script=$(realpath "${BASH_SOURCE[0]}")
cd "$(dirname "$script")/.."

usage() { sed -n '2,13s/^# \{0,1\}//p' "$script"; }

sanitizers=1
for arg in "$@"; do
    case $arg in
        --quick | --no-sanitizers) sanitizers=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "run-all: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

# shellcheck source-path=SCRIPTDIR/..
source .ci/deps.sh

build_jobs=${PLUGMON_BUILD_JOBS:-2}
summary=()
details=()
total_passed=0
total_failed=0
status=0

fmt_time() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# run_stage PRESET LABELS TEST_JOBS [COMMAND PREFIX...]: configure, build and test one preset.
run_stage() {
    local preset=$1 labels=$2 jobs=$3
    shift 3
    local prefix=("$@")
    local t0=$SECONDS rc=0

    echo
    echo "=================== [$preset] configure + build ==================="
    if ! cmake --preset "$preset"; then
        summary+=("$(printf '%-9s %-28s FAIL  configure failed' "$preset" "$labels")")
        status=1
        return 0
    fi
    local targets=()
    [[ -n ${stage_targets:-} ]] && targets=(--target $stage_targets)
    if ! cmake --build --preset "$preset" -j "$build_jobs" "${targets[@]}"; then
        summary+=("$(printf '%-9s %-28s FAIL  build failed (%s)' "$preset" "$labels" \
            "$(fmt_time $((SECONDS - t0)))")")
        status=1
        return 0
    fi
    local t1=$SECONDS

    echo
    echo "=================== [$preset] ctest -L '$labels' ==================="
    local log
    log=$(mktemp "${TMPDIR:-/tmp}/plugmon-ctest.XXXXXX")
    "${prefix[@]}" ctest --preset "$preset" -L "$labels" --output-on-failure -j "$jobs" 2>&1 |
        tee "$log" || rc=$?

    # ctest's closing line: "NN% tests passed, F tests failed out of T".
    local line failed=0 total=0
    line=$(grep -Eo '[0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
    if [[ -n $line ]]; then
        failed=${line%% *}
        total=${line##* }
    fi
    # ctest's list after "The following tests FAILED:", so the summary names them.
    local failed_names
    failed_names=$(sed -n '/The following tests FAILED:/,$p' "$log" | grep -E '^\s+[0-9]+ - ' |
        sed -E 's/^\s+[0-9]+ - //' | tr '\n' ';' || true)
    # The first assertion failures, kept for the end of the run, where a log's tail shows them.
    if ((failed > 0)); then
        details+=("--- [$preset] first failures ---")
        mapfile -t -O "${#details[@]}" details < <(grep -E -A8 ': Failure$|Timeout|Subprocess aborted' "$log" |
            cut -c1-300 | head -n 40 || true)
    fi
    rm -f "$log"
    total_passed=$((total_passed + total - failed))
    total_failed=$((total_failed + failed))

    local times
    times="build $(fmt_time $((t1 - t0))), tests $(fmt_time $((SECONDS - t1)))"
    if ((rc == 0 && total > 0)); then
        summary+=("$(printf '%-9s %-28s PASS  %d/%d tests  (%s)' "$preset" "$labels" "$total" \
            "$total" "$times")")
    elif ((total == 0)); then
        summary+=("$(printf '%-9s %-28s FAIL  no test ran (ctest exit %d)' "$preset" "$labels" "$rc")")
        status=1
    else
        summary+=("$(printf '%-9s %-28s FAIL  %d of %d tests failed, ctest exit %d  (%s)' \
            "$preset" "$labels" "$failed" "$total" "$rc" "$times")")
        [[ -z $failed_names ]] || summary+=("          failed: ${failed_names%;}")
        status=1
    fi
}

start=$SECONDS
echo "=================== format and function length (agent/, probe/, include/) ==================="
if bash .ci/check-format.sh; then
    summary+=("$(printf '%-9s %-28s PASS' format 'agent probe include')")
else
    summary+=("$(printf '%-9s %-28s FAIL  run: bash .ci/check-format.sh --fix' format 'agent probe include')")
    status=1
fi
if python3 .ci/check-function-length.py; then
    summary+=("$(printf '%-9s %-28s PASS  no function over 100 lines' length 'agent probe include')")
else
    summary+=("$(printf '%-9s %-28s FAIL  functions over 100 lines (listed above)' length 'agent probe include')")
    status=1
fi
run_stage default 'unit|multiproc|integration' "${PLUGMON_TEST_JOBS:-2}"
if ((sanitizers)); then
    run_stage asan 'unit|multiproc|sanitize' "${PLUGMON_SAN_TEST_JOBS:-1}"
    # TSan needs a predictable address space; without ASLR its shadow mapping always fits.
    tsan_prefix=()
    if setarch "$(uname -m)" -R true 2>/dev/null; then
        tsan_prefix=(setarch "$(uname -m)" -R)
    fi
    run_stage tsan 'unit|multiproc|sanitize' "${PLUGMON_SAN_TEST_JOBS:-1}" "${tsan_prefix[@]}"
    # libFuzzer over what parses untrusted or user bytes: segment validation and slot decoding,
    # sketch decoding, statement normalisation, spool records and batches. Only the fuzz targets are built; each runs 30 s
    # (longer runs: see tests/fuzz/tests.cmake).
    stage_targets="segment_fuzz sketch_fuzz fingerprint_fuzz spool_fuzz" run_stage fuzz 'fuzz' 1
else
    summary+=("$(printf '%-9s %-28s SKIP  (--quick / --no-sanitizers)' 'asan,tsan' 'unit|multiproc')")
fi

echo
if ((${#details[@]})); then
    echo
    printf '%s\n' "${details[@]}"
fi
echo "=================== plugmon test summary ($(fmt_time $((SECONDS - start)))) ==================="
printf '%s\n' "${summary[@]}"
if ((status == 0)); then
    echo "result: all stages passed"
else
    echo "result: FAILED"
fi
echo "summary: $total_passed passed, $total_failed failed"
exit "$status"
