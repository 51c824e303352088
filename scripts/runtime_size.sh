#!/usr/bin/env bash
# Builds the nanoc runtime as a small C library and reports its size.
#
#   scripts/runtime_size.sh            # sizes, breakdown, limit check, C smoke test
#   NANOC_SIZE_NO_SMOKE=1 scripts/...  # skip the smoke test (it builds the compiler)
#
# The C library is the runtime crate built `no_std` (--no-default-features:
# alloc + libc, its own abort-on-panic handler and malloc allocator) with the
# workspace profile `release-min` (opt-level "s", panic = "abort", fat LTO,
# codegen-units = 1, strip). With the standard library, std's panic machinery
# (backtrace symbolisation: gimli, addr2line, miniz_oxide, rustc-demangle,
# ~250 KB) is linked in whatever the runtime does; the std build is measured
# too, for comparison.
#
# For x86_64-unknown-linux-gnu (the host) it prints:
#   - the stripped sizes of the shared library (.so) and the static library (.a);
#   - the object code the .a actually contributes to a minimal C program that
#     calls every API function (`size` of that program minus an empty one,
#     both linked with --gc-sections);
#   - the largest symbols and a per-crate breakdown of that code;
#   - the same for the other opt-level ("z"), and the .so size with std;
# checks the limit (150 KiB for the .so and for the linked code), and runs
# tests/tests/c_api.rs (the MLP end to end through the C API) against the
# small .a and .so. aarch64-unknown-linux-gnu is built too if its Rust target
# and a cross C compiler are installed; otherwise it says so.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LIMIT=$((150 * 1024))
OUT=${CARGO_TARGET_DIR:-$ROOT/target}/runtime-size
CC=${CC:-cc}
mkdir -p "$OUT"

# Native libraries of the no_std static library (the libc crate's link lines;
# `cargo rustc ... -- --print native-static-libs` prints them).
NATIVE_LIBS="-lc -lm -lrt -lpthread"

# build TARGET_TRIPLE OPT_LEVEL FEATURES_ARGS... -> sets LIB_DIR
build() {
    local triple=$1 opt=$2
    shift 2
    local dir=$OUT/$triple-$opt-$([ $# -gt 0 ] && echo std || echo nostd)
    local common=(-p nanoc-runtime --lib --profile release-min --target "$triple" --target-dir "$dir" --offline -q)
    if [ $# -eq 0 ]; then common+=(--no-default-features); fi
    CARGO_PROFILE_RELEASE_MIN_OPT_LEVEL=$opt cargo build "${common[@]}"
    CARGO_PROFILE_RELEASE_MIN_OPT_LEVEL=$opt cargo rustc "${common[@]}" --crate-type cdylib
    LIB_DIR=$dir/$triple/release-min
}

kib() { awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'; }

# A minimal C program calling every API function once.
cat >"$OUT/every_call.c" <<'EOF'
#include "nanoc_runtime.h"
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    nanoc_model *m = NULL;
    nanoc_tensor_info t;
    size_t size = 1 << 16;
    unsigned char *arena = aligned_alloc(NANOC_ARENA_ALIGN, size);
    const void *in[1] = {arena};
    void *out[1] = {arena};
    if (argc < 2 || !arena) return 2;
    if (nanoc_model_load_file(argv[1], &m) != NANOC_OK && nanoc_model_load_memory(argv[1], 1, &m) != NANOC_OK) {
        puts(nanoc_last_error(NULL));
        return 1;
    }
    nanoc_model_set_threads(m, 1);
    nanoc_model_input_info(m, 0, &t);
    nanoc_model_output_info(m, 0, &t);
    printf("%s %zu %zu %zu\n", nanoc_version(), nanoc_model_num_inputs(m), nanoc_model_num_outputs(m),
           nanoc_model_arena_size(m));
    if (nanoc_model_run(m, in, out) != NANOC_OK || nanoc_model_run_with_arena(m, arena, size, in, out) != NANOC_OK)
        puts(nanoc_last_error(m));
    nanoc_model_free(m);
    free(arena);
    return 0;
}
EOF
cat >"$OUT/empty.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
int main(void) { void *p = aligned_alloc(64, 64); puts("x"); free(p); return 0; }
EOF

# text+data+bss of an executable, from `size`
size_of() { size "$1" | awk 'NR == 2 { print $1 + $2 + $3 }'; }

# report TRIPLE OPT CC: sizes of LIB_DIR's libraries and of the linked code
report() {
    local triple=$1 opt=$2 cc=$3
    local so=$LIB_DIR/libnanoc_runtime.so a=$LIB_DIR/libnanoc_runtime.a
    local so_size a_size
    so_size=$(stat -c %s "$so")
    cp "$a" "$OUT/stripped.a" && strip --strip-unneeded "$OUT/stripped.a" 2>/dev/null || true
    a_size=$(stat -c %s "$OUT/stripped.a")
    echo "== $triple, opt-level \"$opt\", no_std"
    echo "  shared library  libnanoc_runtime.so (stripped): $so_size bytes ($(kib "$so_size"))"
    size "$so" | sed 's/^/    /'
    echo "  static library  libnanoc_runtime.a (strip --strip-unneeded): $a_size bytes ($(kib "$a_size"))"
    echo "    (the archive holds all of core/alloc/compiler_builtins; what a program links is below)"
    local flags=(-Os -ffunction-sections -fdata-sections -Wl,--gc-sections -I "$ROOT/runtime/include")
    "$cc" "${flags[@]}" "$OUT/every_call.c" "$a" $NATIVE_LIBS -o "$OUT/every_call-$triple-$opt"
    "$cc" "${flags[@]}" "$OUT/empty.c" -o "$OUT/empty-$triple-$opt"
    local prog base linked
    prog=$(size_of "$OUT/every_call-$triple-$opt")
    base=$(size_of "$OUT/empty-$triple-$opt")
    linked=$((prog - base))
    echo "  minimal C program calling every API function, linked with the .a and --gc-sections (size):"
    size "$OUT/every_call-$triple-$opt" "$OUT/empty-$triple-$opt" | sed "s|$OUT/||; s/^/    /"
    echo "  object code linked from the runtime (text+data+bss, minus the empty program): $linked bytes ($(kib "$linked"))"
    echo "  its sections (size -A, allocated sections over 256 bytes):"
    size -A "$OUT/every_call-$triple-$opt" | awk 'NR > 2 && $3 > 0 && $2 > 256 { printf "    %-16s %6d\n", $1, $2 }'

    LINKED=$linked
    SO_SIZE=$so_size
}

breakdown() {
    local prog=$1
    echo "  largest symbols linked into the C program (nm --size-sort):"
    nm --size-sort -S -t d -C "$prog" | tail -n 20 | awk '{ printf "    %6d  %s\n", $2, substr($0, index($0, $4)) }'
    echo "  by crate (sum of symbol sizes):"
    nm -S -t d -C "$prog" | awk 'NF >= 4 {
        size = $2 + 0; name = substr($0, index($0, $4));
        if (name ~ /^nanoc_/ || name ~ /nanoc_runtime/) c = "nanoc_runtime";
        else if (name ~ /crc32fast/) c = "crc32fast";
        else if (name ~ /^(<)?(core|<core)::fmt/ || name ~ /core::fmt/) c = "core::fmt";
        else if (name ~ /alloc::/) c = "alloc";
        else if (name ~ /core::/) c = "core (other)";
        else if (name ~ /compiler_builtins|^__/) c = "compiler_builtins / libgcc";
        else c = "C program and libc glue";
        sum[c] += size } END { for (c in sum) printf "    %6d  %s\n", sum[c], c }' | sort -rn
}

status=0
check() { # what bytes
    if [ "$2" -gt "$LIMIT" ]; then
        echo "  OVER THE LIMIT: $1 is $2 bytes > $LIMIT"
        status=1
    else
        echo "  within the limit: $1 $(kib "$2") <= $(kib "$LIMIT")"
    fi
}

HOST=x86_64-unknown-linux-gnu
OPT=$(awk '/^\[profile.release-min\]/ { p = 1; next } /^\[/ { p = 0 } p && $1 == "opt-level" { gsub(/"/, "", $3); print $3 }' Cargo.toml)
OTHER=$([ "$OPT" = s ] && echo z || echo s)
echo "rustc: $(rustc -V)"
echo "profile release-min: opt-level \"$OPT\", panic = \"abort\", lto = true, codegen-units = 1, strip = true"
echo

build "$HOST" "$OTHER"
report "$HOST" "$OTHER" "$CC"
OTHER_LINKED=$LINKED OTHER_SO=$SO_SIZE
echo

build "$HOST" "$OPT"
report "$HOST" "$OPT" "$CC"
breakdown "$OUT/every_call-$HOST-$OPT"
check "libnanoc_runtime.so" "$SO_SIZE"
check "linked object code" "$LINKED"
MAIN_DIR=$LIB_DIR
echo "  opt-level \"$OTHER\" for comparison: .so $(kib "$OTHER_SO"), linked $(kib "$OTHER_LINKED")"
echo

build "$HOST" "$OPT" std
std_so=$(stat -c %s "$LIB_DIR/libnanoc_runtime.so")
echo "== $HOST, opt-level \"$OPT\", with std (default features), for comparison"
echo "  shared library  libnanoc_runtime.so (stripped): $std_so bytes ($(kib "$std_so"))"
echo

AARCH=aarch64-unknown-linux-gnu
if ! rustc --print target-libdir --target "$AARCH" 2>/dev/null | xargs -r test -d; then
    echo "== $AARCH: Rust target not installed (rustup target add $AARCH; no download possible here): skipped"
elif ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    echo "== $AARCH: no cross C compiler (aarch64-linux-gnu-gcc): skipped"
else
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc build "$AARCH" "$OPT"
    report "$AARCH" "$OPT" aarch64-linux-gnu-gcc
    check "libnanoc_runtime.so ($AARCH)" "$SO_SIZE"
    check "linked object code ($AARCH)" "$LINKED"
fi
echo

if [ -z "${NANOC_SIZE_NO_SMOKE:-}" ]; then
    echo "== smoke test: tests/tests/c_api.rs (the MLP through the C API) against the small libraries"
    NANOC_C_API_LIB=$MAIN_DIR/libnanoc_runtime.a NANOC_C_API_LIBS="$NATIVE_LIBS" \
        cargo test -q -p nanoc-tests --test c_api --offline -- --exact c_program_runs_the_mlp_through_the_c_api
    NANOC_C_API_LIB=$MAIN_DIR/libnanoc_runtime.so NANOC_C_API_LIBS="-Wl,-rpath,$MAIN_DIR" \
        cargo test -q -p nanoc-tests --test c_api --offline -- --exact c_program_runs_the_mlp_through_the_c_api
fi
exit $status
