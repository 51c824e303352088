/* Runs models compiled to object files (`nanoc compile --emit obj`), all
 * linked into this one program: tests/tests/object_file.rs writes, into a
 * directory DIR, one object and header per model (each with its own symbol
 * prefix), the inputs and onnxruntime's outputs as raw little-endian files,
 * and `cases.h`, which includes every model header and lists the models in
 * CASES (see `struct model_case`). Built with the host C compiler, or with
 * aarch64-linux-gnu-gcc and run under qemu-aarch64.
 *
 * Usage: run_object DIR. For each model it reads DIR/<prefix>_input_<i>.bin,
 * runs the model through its typed wrapper (<prefix>_run_typed) on a scratch
 * buffer filled with garbage, compares every output with
 * DIR/<prefix>_expected_<i>.bin (floats: |got - want| <= 1e-4 |want| + 1e-5,
 * NaN matches NaN; other types exactly), writes DIR/<prefix>_output_<i>.bin,
 * runs again through <prefix>_run on other garbage and checks the outputs are
 * bitwise the same, and checks that bad arguments return the bad-argument
 * status without touching the outputs. When DIR/<prefix>_bad_input_0.bin
 * exists (an input 0 with an out-of-range index), a run with it must return
 * <PREFIX>_ERR_INDEX_OUT_OF_RANGE and leave the outputs alone. Prints one
 * line per model and `ok` last; exits nonzero on the first failure. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IO 8

typedef int (*run_fn)(const void *const *inputs, void *const *outputs, void *scratch);

struct model_case {
    const char *prefix;
    run_fn run;       /* <prefix>_run, the object's entry point */
    run_fn run_typed; /* a shim over <prefix>_run_typed, the header's wrapper */
    size_t scratch_size;
    size_t scratch_align;
    int bad_argument; /* <PREFIX>_ERR_BAD_ARGUMENT */
    int index_error;  /* <PREFIX>_ERR_INDEX_OUT_OF_RANGE */
    int num_inputs, num_outputs;
    size_t input_size[MAX_IO];
    size_t output_size[MAX_IO];
    int output_dtype[MAX_IO];
};

#include "cases.h"

static const char *dir;

static int fail(const char *prefix, const char *what) {
    printf("case %s: FAILED: %s\n", prefix, what);
    return 1;
}

static void *read_file(const char *prefix, const char *kind, int i, size_t want) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%s_%d.bin", dir, prefix, kind, i);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    void *buf = malloc(want ? want : 1);
    size_t got = fread(buf, 1, want, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != want || extra) {
        printf("%s: expected %zu bytes\n", path, want);
        free(buf);
        return NULL;
    }
    return buf;
}

static int write_file(const char *prefix, int i, const void *data, size_t len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_output_%d.bin", dir, prefix, i);
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    size_t n = fwrite(data, 1, len, f);
    return fclose(f) != 0 || n != len;
}

/* Elementwise check; returns the number of mismatches, and the worst
 * absolute error among floats in *worst. */
static size_t compare(int dtype, const void *got, const void *want, size_t bytes, double *worst) {
    size_t bad = 0;
    if (dtype == NANOC_DTYPE_F32) {
        const float *g = got, *w = want;
        for (size_t i = 0; i < bytes / sizeof(float); i++) {
            double a = g[i], b = w[i];
            if (isnan(a) || isnan(b)) {
                bad += !(isnan(a) && isnan(b));
                continue;
            }
            double err = fabs(a - b);
            if (err > *worst) *worst = err;
            if (!(err <= 1e-4 * fabs(b) + 1e-5)) {
                if (bad == 0) printf("  element %zu: got %.9g expected %.9g\n", i, a, b);
                bad++;
            }
        }
        return bad;
    }
    return memcmp(got, want, bytes) != 0;
}

static int run_case(const struct model_case *c) {
    const void *inputs[MAX_IO];
    void *outputs[MAX_IO], *again[MAX_IO], *expected[MAX_IO];
    if (c->num_inputs > MAX_IO || c->num_outputs > MAX_IO) return fail(c->prefix, "too many inputs or outputs");
    for (int i = 0; i < c->num_inputs; i++) {
        inputs[i] = read_file(c->prefix, "input", i, c->input_size[i]);
        if (!inputs[i]) return fail(c->prefix, "cannot read an input");
    }
    for (int i = 0; i < c->num_outputs; i++) {
        expected[i] = read_file(c->prefix, "expected", i, c->output_size[i]);
        if (!expected[i]) return fail(c->prefix, "cannot read an expected output");
        outputs[i] = malloc(c->output_size[i]);
        again[i] = malloc(c->output_size[i]);
    }
    size_t rounded = (c->scratch_size + c->scratch_align - 1) / c->scratch_align * c->scratch_align;
    /* One extra alignment unit for the misaligned-scratch check below. */
    unsigned char *scratch = aligned_alloc(c->scratch_align, rounded + c->scratch_align);
    if (!scratch) return fail(c->prefix, "cannot allocate scratch");

    /* Run 1: the typed wrapper, on garbage scratch. */
    memset(scratch, 0xA5, rounded);
    int st = c->run_typed(inputs, outputs, scratch);
    if (st != 0) {
        printf("  status %d\n", st);
        return fail(c->prefix, "run failed");
    }
    double worst = 0;
    for (int i = 0; i < c->num_outputs; i++) {
        if (compare(c->output_dtype[i], outputs[i], expected[i], c->output_size[i], &worst) != 0)
            return fail(c->prefix, "output differs from onnxruntime");
        if (write_file(c->prefix, i, outputs[i], c->output_size[i])) return fail(c->prefix, "cannot write output");
    }

    /* Run 2: the entry point itself, on other garbage: same bits. */
    memset(scratch, 0x3C, rounded);
    st = c->run(inputs, again, scratch);
    if (st != 0) return fail(c->prefix, "second run failed");
    for (int i = 0; i < c->num_outputs; i++)
        if (memcmp(outputs[i], again[i], c->output_size[i]) != 0) return fail(c->prefix, "runs differ");

    /* Bad arguments: the status, and the outputs untouched. */
    for (int i = 0; i < c->num_outputs; i++) memset(again[i], 0x77, c->output_size[i]);
    if (c->run(inputs, again, scratch + 8) != c->bad_argument) return fail(c->prefix, "misaligned scratch accepted");
    if (c->run(inputs, again, NULL) != c->bad_argument) return fail(c->prefix, "NULL scratch accepted");
    if (c->num_inputs > 0 && c->run(NULL, again, scratch) != c->bad_argument)
        return fail(c->prefix, "NULL inputs accepted");
    if (c->num_outputs > 0) {
        void *saved = again[0];
        again[0] = NULL;
        if (c->run(inputs, again, scratch) != c->bad_argument) return fail(c->prefix, "NULL output accepted");
        again[0] = saved;
    }
    /* An out-of-range index, if the test wrote one: the kernel's status. */
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_bad_input_0.bin", dir, c->prefix);
    FILE *probe = c->num_inputs > 0 ? fopen(path, "rb") : NULL;
    if (probe) {
        fclose(probe);
        const void *bad[MAX_IO];
        memcpy(bad, inputs, sizeof bad);
        bad[0] = read_file(c->prefix, "bad_input", 0, c->input_size[0]);
        if (!bad[0]) return fail(c->prefix, "cannot read the bad input");
        st = c->run(bad, again, scratch);
        if (st != c->index_error) {
            printf("  status %d\n", st);
            return fail(c->prefix, "an out-of-range index was not reported");
        }
        printf("case %s: out-of-range index: status %d\n", c->prefix, st);
        free((void *)bad[0]);
    }
    for (int i = 0; i < c->num_outputs; i++) {
        const unsigned char *p = again[i];
        for (size_t j = 0; j < c->output_size[i]; j++)
            if (p[j] != 0x77) return fail(c->prefix, "a failed run wrote an output");
    }

    printf("case %s: ok (%d inputs, %d outputs, scratch %zu bytes, max abs error %.3g)\n", c->prefix, c->num_inputs,
           c->num_outputs, c->scratch_size, worst);
    for (int i = 0; i < c->num_inputs; i++) free((void *)inputs[i]);
    for (int i = 0; i < c->num_outputs; i++) {
        free(outputs[i]);
        free(again[i]);
        free(expected[i]);
    }
    free(scratch);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        if (run_case(&CASES[i])) return 1;
    printf("ok\n");
    return 0;
}
