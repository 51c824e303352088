#!/usr/bin/env bash
# Fuzzes nanoc's loaders (docs/fuzzing.md) with the stable-Rust engine of
# tests/src/fuzz.rs, through the fuzz tests of tests/tests/fuzz.rs, for a
# time budget per target, then prints one table row per target.
#
#   scripts/fuzz.sh TARGET|all SECONDS
#
# Targets: onnx ngraph safetensors toml bundle. Targets run one after the
# other. Crashes and timeouts are saved under tests/fuzz/crashes/<target>/.
# Environment: NANOC_FUZZ_EXECS=N runs N executions per target instead of
# the time budget; NANOC_FUZZ_SEED fixes the PRNG seed; NANOC_FUZZ_PROFILE=
# release uses the release profile (a second full build; the dev profile
# is the default, see docs/fuzzing.md). Exits 1 if any target found a
# crash or a timeout or died.
set -uo pipefail
cd "$(dirname "$0")/.."

usage="usage: scripts/fuzz.sh TARGET|all SECONDS (targets: onnx ngraph safetensors toml bundle)"
target=${1:?$usage}
secs=${2:?$usage}
all=(onnx ngraph safetensors toml bundle)
if [[ $target == all ]]; then
    list=("${all[@]}")
elif [[ " ${all[*]} " == *" $target "* ]]; then
    list=("$target")
else
    echo "$usage" >&2
    exit 2
fi

profile=()
if [[ ${NANOC_FUZZ_PROFILE:-dev} == release ]]; then
    profile=(--release)
fi
cargo test "${profile[@]}" -q -p nanoc-tests --test fuzz --no-run || exit 1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
for t in "${list[@]}"; do
    if [[ -n ${NANOC_FUZZ_EXECS:-} ]]; then budget="$NANOC_FUZZ_EXECS execs"; else budget="$secs s"; fi
    echo "== fuzz $t: $budget"
    NANOC_FUZZ_STRICT_TIME=1 NANOC_FUZZ_SECS=$secs cargo test "${profile[@]}" -q -p nanoc-tests --test fuzz -- \
        --exact "fuzz_$t" --nocapture --test-threads=1 >"$log.$t" 2>&1
    rc=$?
    # Findings, abort messages and the stats line.
    grep -E '^(--- |    saved|    input|nanoc fuzz:|FUZZ-STATS|thread .* overflowed)' "$log.$t"
    if [[ $rc -ne 0 ]]; then
        status=1
        if ! grep -q "^FUZZ-STATS target=$t " "$log.$t"; then
            tail -5 "$log.$t"
            echo "FUZZ-STATS target=$t execs=? secs=? execs_per_sec=? crashes=DIED timeouts=? memory=? corpus=?" >>"$log"
        fi
    fi
    grep "^FUZZ-STATS target=$t " "$log.$t" >>"$log"
    rm -f "$log.$t"
done

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
printf '\n%-12s | %10s | %8s | %7s | %8s | %6s | %6s\n' target execs execs/s crashes timeouts memory corpus
printf '%s\n' "-------------|------------|----------|---------|----------|--------|-------"
while read -r line; do
    printf '%-12s | %10s | %8s | %7s | %8s | %6s | %6s\n' "$(field target "$line")" "$(field execs "$line")" \
        "$(field execs_per_sec "$line")" "$(field crashes "$line")" "$(field timeouts "$line")" \
        "$(field memory "$line")" "$(field corpus "$line")"
done <"$log"
exit $status
