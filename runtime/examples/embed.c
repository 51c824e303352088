/*
 * embed.c - the smallest useful program on the nanoc C API
 * (runtime/include/nanoc_runtime.h, docs/c-api.md).
 *
 * Usage: embed MODEL.nanob
 *
 * Loads the bundle, prints its inputs and outputs, runs it once on zero
 * inputs with the model's own arena and once allocation-free on a
 * caller-provided arena, and prints the first values of every output.
 * Exits 0 on success, 1 with the runtime's error message otherwise.
 * README's "Embed in C" builds it; tests/tests/c_api.rs runs it.
 */
#include "nanoc_runtime.h"

#include <stdio.h>
#include <stdlib.h>

static void print_info(const char *kind, size_t i, const nanoc_tensor_info *t) {
    printf("%s %zu: %s, dtype %d, dims [", kind, i, t->name, (int)t->dtype);
    for (unsigned d = 0; d < t->rank; d++) printf(d ? ", %zu" : "%zu", (size_t)t->dims[d]);
    printf("], %zu bytes\n", t->byte_size);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.nanob\n", argv[0]);
        return 1;
    }
    nanoc_model *m;
    if (nanoc_model_load_file(argv[1], &m) != NANOC_OK) {
        fprintf(stderr, "%s\n", nanoc_last_error(NULL)); /* load errors are per thread */
        return 1;
    }
    size_t n_in = nanoc_model_num_inputs(m), n_out = nanoc_model_num_outputs(m);
    const void **inputs = calloc(n_in ? n_in : 1, sizeof *inputs);
    void **outputs = calloc(n_out ? n_out : 1, sizeof *outputs);
    nanoc_tensor_info *out_info = calloc(n_out ? n_out : 1, sizeof *out_info);
    int status = 0;
    for (size_t i = 0; i < n_in; i++) {
        nanoc_tensor_info t;
        nanoc_model_input_info(m, i, &t);
        print_info("input", i, &t);
        inputs[i] = calloc(1, t.byte_size ? t.byte_size : 1); /* zeros */
    }
    for (size_t i = 0; i < n_out; i++) {
        nanoc_model_output_info(m, i, &out_info[i]);
        print_info("output", i, &out_info[i]);
        outputs[i] = malloc(out_info[i].byte_size ? out_info[i].byte_size : 1);
    }

    /* Simple: run on the model's own arena. */
    if (nanoc_model_run(m, inputs, outputs) != NANOC_OK) {
        fprintf(stderr, "%s\n", nanoc_last_error(m));
        status = 1;
    }
    /* Allocation-free: run on your own arena (any memory, 64-byte aligned). */
    size_t size = nanoc_model_arena_size(m);
    size_t rounded = (size + NANOC_ARENA_ALIGN - 1) / NANOC_ARENA_ALIGN * NANOC_ARENA_ALIGN;
    void *arena = aligned_alloc(NANOC_ARENA_ALIGN, rounded ? rounded : NANOC_ARENA_ALIGN);
    if (status == 0 && nanoc_model_run_with_arena(m, arena, size, inputs, outputs) != NANOC_OK) {
        fprintf(stderr, "%s\n", nanoc_last_error(m));
        status = 1;
    }
    for (size_t i = 0; status == 0 && i < n_out; i++) {
        if (out_info[i].dtype != NANOC_DTYPE_F32) continue;
        const float *y = outputs[i];
        size_t n = out_info[i].byte_size / sizeof(float);
        printf("%s:", out_info[i].name);
        for (size_t k = 0; k < n && k < 6; k++) printf(" %g", y[k]);
        printf("%s\n", n > 6 ? " ..." : "");
    }
    printf("arena %zu bytes\n", size);

    free(arena);
    for (size_t i = 0; i < n_in; i++) free((void *)inputs[i]);
    for (size_t i = 0; i < n_out; i++) free(outputs[i]);
    free(inputs);
    free(outputs);
    free(out_info);
    nanoc_model_free(m);
    return status;
}
