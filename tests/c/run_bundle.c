/*
 * run_bundle.c - end-to-end check of the nanoc C API (runtime/include/nanoc_runtime.h).
 *
 * Usage: run_bundle DIR
 *
 * DIR holds model.nanob, input_<i>.bin and expected_<i>.bin (raw tensor
 * bytes in signature order), and corrupt.nanob (a damaged bundle). The
 * program loads the bundle from the file and from memory, prints its
 * inputs and outputs, runs it on its own arena and on a caller-provided
 * arena, compares every output with the expected bytes (f32 within 1e-4
 * relative + 1e-5 absolute, other types exactly), and checks that bad
 * arguments and bad bundles are reported as errors with messages.
 * Prints "ok" and exits 0 on success; prints what failed and exits 1.
 *
 * Built by tests/tests/c_api.rs with the system C compiler, and by
 * scripts/runtime_size.sh against the size-optimised library.
 */
#include "nanoc_runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The header's struct must match the Rust layout (pointer, i32, u32, pointer, size_t). */
_Static_assert(sizeof(void *) != 8 || (offsetof(nanoc_tensor_info, dims) == 16 && sizeof(nanoc_tensor_info) == 32),
               "nanoc_tensor_info layout differs from runtime/src/capi.rs");

static int failures = 0;

#define CHECK(cond, ...)                                                                                   \
    do {                                                                                                   \
        if (!(cond)) {                                                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                                                  \
            fprintf(stderr, "\n");                                                                         \
            failures++;                                                                                    \
        }                                                                                                  \
    } while (0)

/* Read a whole file; returns NULL (and reports) on failure. */
static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
        fprintf(stderr, "cannot read %s\n", path);
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static const char *dtype_name(int32_t d) {
    switch (d) {
    case NANOC_DTYPE_F32: return "f32";
    case NANOC_DTYPE_F16: return "f16";
    case NANOC_DTYPE_BF16: return "bf16";
    case NANOC_DTYPE_I8: return "i8";
    case NANOC_DTYPE_U8: return "u8";
    case NANOC_DTYPE_I32: return "i32";
    case NANOC_DTYPE_I64: return "i64";
    case NANOC_DTYPE_BOOL: return "bool";
    default: return "?";
    }
}

static void print_info(const char *role, size_t i, const nanoc_tensor_info *t) {
    printf("%s %zu: %s %s[", role, i, t->name, dtype_name(t->dtype));
    for (uint32_t d = 0; d < t->rank; d++) printf("%s%llu", d ? ", " : "", (unsigned long long)t->dims[d]);
    printf("] %zu bytes\n", t->byte_size);
}

/* Compare output `i` with the expected bytes. */
static void compare(const char *what, size_t i, const nanoc_tensor_info *t, const unsigned char *got,
                    const unsigned char *want) {
    if (t->dtype != NANOC_DTYPE_F32) {
        CHECK(memcmp(got, want, t->byte_size) == 0, "%s: output %zu (%s) differs", what, i, t->name);
        return;
    }
    size_t n = t->byte_size / 4, bad = 0;
    for (size_t k = 0; k < n; k++) {
        float g, w;
        memcpy(&g, got + 4 * k, 4);
        memcpy(&w, want + 4 * k, 4);
        if (!(fabsf(g - w) <= 1e-4f * fabsf(w) + 1e-5f)) {
            if (bad++ == 0) fprintf(stderr, "%s: output %zu element %zu: got %g, expected %g\n", what, i, k, g, w);
        }
    }
    CHECK(bad == 0, "%s: output %zu (%s): %zu of %zu elements differ", what, i, t->name, bad, n);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    char path[4096];
    printf("nanoc runtime %s\n", nanoc_version());
    CHECK(strlen(nanoc_version()) > 0, "empty version");

    /* Load from the file and from memory. */
    nanoc_model *file_model = NULL, *mem_model = NULL;
    snprintf(path, sizeof path, "%s/model.nanob", dir);
    int st = nanoc_model_load_file(path, &file_model);
    CHECK(st == NANOC_OK && file_model, "load_file: %d %s", st, nanoc_last_error(NULL));
    size_t bundle_len = 0;
    unsigned char *bundle = read_file(path, &bundle_len);
    if (!bundle || !file_model) return 1;
    st = nanoc_model_load_memory(bundle, bundle_len, &mem_model);
    CHECK(st == NANOC_OK && mem_model, "load_memory: %d %s", st, nanoc_last_error(NULL));
    if (!mem_model) return 1;
    memset(bundle, 0, bundle_len); /* the model owns a copy */
    free(bundle);

    /* Inputs and outputs; both models must agree. */
    size_t n_in = nanoc_model_num_inputs(file_model), n_out = nanoc_model_num_outputs(file_model);
    CHECK(n_in == nanoc_model_num_inputs(mem_model) && n_out == nanoc_model_num_outputs(mem_model), "counts");
    CHECK(n_in > 0 && n_out > 0 && n_in <= 16 && n_out <= 16, "%zu inputs, %zu outputs", n_in, n_out);
    if (n_in == 0 || n_out == 0 || n_in > 16 || n_out > 16) return 1;
    nanoc_tensor_info in_info[16], out_info[16], other;
    const void *inputs[16];
    void *outputs[16];
    unsigned char *expected[16];
    for (size_t i = 0; i < n_in; i++) {
        CHECK(nanoc_model_input_info(file_model, i, &in_info[i]) == NANOC_OK, "%s", nanoc_last_error(file_model));
        CHECK(nanoc_model_input_info(mem_model, i, &other) == NANOC_OK && strcmp(other.name, in_info[i].name) == 0 &&
                  other.byte_size == in_info[i].byte_size,
              "input %zu differs between the models", i);
        print_info("input", i, &in_info[i]);
        size_t len = 0;
        snprintf(path, sizeof path, "%s/input_%zu.bin", dir, i);
        unsigned char *data = read_file(path, &len);
        if (!data) return 1;
        CHECK(len == in_info[i].byte_size, "input %zu: file has %zu bytes, model wants %zu", i, len,
              in_info[i].byte_size);
        if (len != in_info[i].byte_size) return 1;
        inputs[i] = data;
    }
    for (size_t i = 0; i < n_out; i++) {
        CHECK(nanoc_model_output_info(file_model, i, &out_info[i]) == NANOC_OK, "%s", nanoc_last_error(file_model));
        print_info("output", i, &out_info[i]);
        size_t len = 0;
        snprintf(path, sizeof path, "%s/expected_%zu.bin", dir, i);
        expected[i] = read_file(path, &len);
        if (!expected[i]) return 1;
        CHECK(len == out_info[i].byte_size, "expected %zu: %zu bytes vs %zu", i, len, out_info[i].byte_size);
        if (len != out_info[i].byte_size) return 1;
        outputs[i] = malloc(out_info[i].byte_size ? out_info[i].byte_size : 1);
    }
    CHECK(nanoc_model_input_info(file_model, n_in, &other) == NANOC_ERR_INVALID_ARGUMENT, "index out of range");
    CHECK(strlen(nanoc_last_error(file_model)) > 0, "no message for a bad index");

    /* Run on the model's own arena (the thread count is accepted and stored). */
    CHECK(nanoc_model_set_threads(file_model, 2) == NANOC_OK, "%s", nanoc_last_error(file_model));
    CHECK(nanoc_model_set_threads(file_model, -1) == NANOC_ERR_INVALID_ARGUMENT, "negative threads");
    for (int rep = 0; rep < 2; rep++) {
        for (size_t i = 0; i < n_out; i++) memset(outputs[i], 0xFF, out_info[i].byte_size);
        st = nanoc_model_run(file_model, inputs, outputs);
        CHECK(st == NANOC_OK, "run: %d %s", st, nanoc_last_error(file_model));
        for (size_t i = 0; i < n_out; i++) compare("run", i, &out_info[i], outputs[i], expected[i]);
    }

    /* Run on a caller-provided arena, filled with garbage first. */
    size_t arena_size = nanoc_model_arena_size(mem_model);
    CHECK(arena_size == nanoc_model_arena_size(file_model) && arena_size > 0, "arena size %zu", arena_size);
    printf("arena: %zu bytes\n", arena_size);
    size_t alloc_size = (arena_size + 2 * NANOC_ARENA_ALIGN) / NANOC_ARENA_ALIGN * NANOC_ARENA_ALIGN;
    unsigned char *arena = aligned_alloc(NANOC_ARENA_ALIGN, alloc_size);
    if (!arena) return 1;
    for (int rep = 0; rep < 2; rep++) {
        memset(arena, 0xA5 + rep, alloc_size);
        for (size_t i = 0; i < n_out; i++) memset(outputs[i], 0xFF, out_info[i].byte_size);
        st = nanoc_model_run_with_arena(mem_model, arena, arena_size, inputs, outputs);
        CHECK(st == NANOC_OK, "run_with_arena: %d %s", st, nanoc_last_error(mem_model));
        for (size_t i = 0; i < n_out; i++) compare("run_with_arena", i, &out_info[i], outputs[i], expected[i]);
    }

    /* Bad arenas and buffers are errors with messages. */
    st = nanoc_model_run_with_arena(mem_model, arena, arena_size - 1, inputs, outputs);
    CHECK(st == NANOC_ERR_INVALID_ARGUMENT && strstr(nanoc_last_error(mem_model), "too small"), "small arena: %d %s",
          st, nanoc_last_error(mem_model));
    st = nanoc_model_run_with_arena(mem_model, arena + 1, arena_size, inputs, outputs);
    CHECK(st == NANOC_ERR_INVALID_ARGUMENT && strstr(nanoc_last_error(mem_model), "aligned"), "misaligned: %d %s",
          st, nanoc_last_error(mem_model));
    st = nanoc_model_run_with_arena(mem_model, NULL, arena_size, inputs, outputs);
    CHECK(st == NANOC_ERR_INVALID_ARGUMENT, "NULL arena: %d", st);
    st = nanoc_model_run(file_model, NULL, outputs);
    CHECK(st == NANOC_ERR_INVALID_ARGUMENT && strlen(nanoc_last_error(file_model)) > 0, "NULL inputs: %d", st);
    st = nanoc_model_run(NULL, inputs, outputs);
    CHECK(st == NANOC_ERR_INVALID_ARGUMENT && strlen(nanoc_last_error(NULL)) > 0, "NULL model: %d", st);
    free(arena);

    /* Bad bundles: rejected with a status and a message, never loaded. */
    nanoc_model *bad = (nanoc_model *)&failures; /* must be overwritten with NULL */
    snprintf(path, sizeof path, "%s/corrupt.nanob", dir);
    st = nanoc_model_load_file(path, &bad);
    CHECK(st == NANOC_ERR_BAD_BUNDLE && bad == NULL, "corrupt file: status %d", st);
    CHECK(strlen(nanoc_last_error(NULL)) > 0, "corrupt file: empty message");
    printf("corrupt bundle: status %d: %s\n", st, nanoc_last_error(NULL));
    size_t corrupt_len = 0;
    unsigned char *corrupt = read_file(path, &corrupt_len);
    if (!corrupt) return 1;
    st = nanoc_model_load_memory(corrupt, corrupt_len / 2, &bad);
    CHECK(st == NANOC_ERR_BAD_BUNDLE && bad == NULL && strstr(nanoc_last_error(NULL), "truncated"),
          "truncated: status %d %s", st, nanoc_last_error(NULL));
    free(corrupt);
    snprintf(path, sizeof path, "%s/does-not-exist.nanob", dir);
    st = nanoc_model_load_file(path, &bad);
    CHECK(st == NANOC_ERR_IO && bad == NULL && strlen(nanoc_last_error(NULL)) > 0, "missing file: status %d", st);
    CHECK(nanoc_model_load_file(NULL, &bad) == NANOC_ERR_INVALID_ARGUMENT, "NULL path");

    for (size_t i = 0; i < n_in; i++) free((void *)inputs[i]);
    for (size_t i = 0; i < n_out; i++) {
        free(outputs[i]);
        free(expected[i]);
    }
    nanoc_model_free(file_model);
    nanoc_model_free(mem_model);
    nanoc_model_free(NULL);

    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
