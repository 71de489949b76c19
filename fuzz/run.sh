#!/bin/sh
# Runs one libFuzzer harness for a given time on its corpus plus its kept
# regression inputs, logs everything to build-fuzz/logs/<harness>.log and
# prints one summary line (executions, speed, coverage, features, corpus).
# Exits non-zero when the harness found a crash, leak, sanitizer report or
# harness-check failure; the input is then in build-fuzz/artifacts/<harness>/.
# Usage: sh fuzz/run.sh HARNESS SECONDS [extra libFuzzer flags...]
set -u
h=$1
secs=$2
shift 2
B=${FUZZ_BUILD:-build-fuzz}
case $h in
onnx) max_len=2097152 ;;
png | jpeg) max_len=262144 ;;
*) max_len=65536 ;;
esac
mkdir -p "$B/corpus/$h" "$B/artifacts/$h" "$B/logs"
log=$B/logs/$h.log
regressions=
[ -d "tests/regressions/$h" ] && regressions=tests/regressions/$h
# allocator_may_return_null: a refused huge allocation must end in a clean
# out-of-memory error, not a crash. One OpenBLAS thread: the harness is serial.
OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 \
    "$B/fuzz/fuzz_$h" -max_total_time="$secs" -timeout=60 -rss_limit_mb=4096 \
    -malloc_limit_mb=4096 -max_len="$max_len" -print_final_stats=1 \
    -artifact_prefix="$B/artifacts/$h/" "$@" "$B/corpus/$h" $regressions >"$log" 2>&1
rc=$?
stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p')
if [ "$rc" -eq 0 ]; then
    echo "fuzz_$h: $secs s, $(stat number_of_executed_units) executions ($(stat average_exec_per_sec)/s), cov $cov, ft $ft, corpus $corp: no findings"
else
    echo "fuzz_$h: FAILED (exit $rc) after $(stat number_of_executed_units) executions; log $log, input in $B/artifacts/$h/:"
    grep -E 'ERROR|SUMMARY|deadly signal|harness check' "$log" | head -n 5
fi
exit "$rc"
