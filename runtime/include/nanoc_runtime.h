/*
 * nanoc_runtime.h - C API of the nanoc runtime (nanoc-runtime crate).
 *
 * Loads `.nanob` bundles compiled by nanoc and runs them. Hand-kept to match
 * runtime/src/capi.rs; tests/tests/c_api.rs compiles and runs a C program
 * against it. Build and link instructions: docs/c-api.md.
 *
 * Conventions
 * - Functions that can fail return an int status: NANOC_OK (0) or a
 *   NANOC_ERR_* code. On failure a message is recorded; nanoc_last_error()
 *   returns it. Successful calls leave the recorded message unchanged.
 * - Failures of calls on a model are recorded in that model. Failures of
 *   loads, and of calls whose model argument is NULL, are recorded per
 *   thread (read them with nanoc_last_error(NULL)).
 * - Every pointer argument is checked for NULL (an error, never a crash);
 *   non-NULL pointers must be valid as documented.
 * - No Rust panic crosses the API: a runtime bug is reported as
 *   NANOC_ERR_INTERNAL (or aborts the process in panic=abort builds).
 * - Threads: a model may be used from any thread. nanoc_model_run and
 *   nanoc_model_set_threads need exclusive use of the model; all other
 *   functions may run concurrently on the same model, including
 *   nanoc_model_run_with_arena with a distinct arena per thread.
 *
 * Trust: validation rejects corrupt and truncated bundles, but a bundle's
 * kernels are native machine code; only load bundles you trust.
 */
#ifndef NANOC_RUNTIME_H
#define NANOC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
#define NANOC_OK 0
/* A NULL or out-of-range argument, a NULL input/output buffer, or an arena
 * that is too small or misaligned. */
#define NANOC_ERR_INVALID_ARGUMENT 1
/* Opening or mapping the file, or allocating memory, failed. */
#define NANOC_ERR_IO 2
/* The bundle is corrupt, truncated or malformed. */
#define NANOC_ERR_BAD_BUNDLE 3
/* A valid bundle this runtime cannot run: another format or kernel ABI
 * version, code for another CPU architecture, or a plan step with more than
 * 256 kernel arguments. */
#define NANOC_ERR_UNSUPPORTED 4
/* A kernel reported an error during a run (e.g. an index out of range). */
#define NANOC_ERR_RUN 5
/* A bug in the runtime was caught. */
#define NANOC_ERR_INTERNAL 6

/* Element type codes (nanoc_tensor_info.dtype; the bundle format's codes). */
#define NANOC_DTYPE_F32 1
#define NANOC_DTYPE_F16 2
#define NANOC_DTYPE_BF16 3
#define NANOC_DTYPE_I8 4
#define NANOC_DTYPE_U8 5
#define NANOC_DTYPE_I32 6
#define NANOC_DTYPE_I64 7
#define NANOC_DTYPE_BOOL 8 /* one byte, 0 or 1 */

/* Alignment in bytes that an arena given to nanoc_model_run_with_arena must
 * have, e.g. aligned_alloc(NANOC_ARENA_ALIGN, size rounded up to it). */
#define NANOC_ARENA_ALIGN 64

/* A loaded model (opaque). */
typedef struct nanoc_model nanoc_model;

/* A model input or output: a dense, row-major, little-endian tensor. All
 * pointers stay valid until the model is freed. */
typedef struct nanoc_tensor_info {
    const char *name;     /* NUL-terminated name */
    int32_t dtype;        /* NANOC_DTYPE_* */
    uint32_t rank;        /* number of dimensions, 0 for a scalar */
    const uint64_t *dims; /* rank dimensions (never NULL) */
    size_t byte_size;     /* size of the tensor in bytes */
} nanoc_tensor_info;

/* Load the bundle file at `path` (NUL-terminated). On success stores a new
 * model in *out; on failure stores NULL and returns NANOC_ERR_IO (cannot open
 * or map the file), NANOC_ERR_BAD_BUNDLE, NANOC_ERR_UNSUPPORTED or
 * NANOC_ERR_INVALID_ARGUMENT, with the message in nanoc_last_error(NULL)
 * (prefixed with the path). The file is mapped, not read: it must not be
 * modified or truncated while the model is alive. */
int nanoc_model_load_file(const char *path, nanoc_model **out);

/* Load a bundle from `len` bytes at `data`. The bytes are copied: the caller
 * may free them as soon as this returns. Errors as for nanoc_model_load_file. */
int nanoc_model_load_memory(const void *data, size_t len, nanoc_model **out);

/* Free a model and everything it owns. NULL is ignored. */
void nanoc_model_free(nanoc_model *model);

/* Number of inputs / outputs (0 for NULL). */
size_t nanoc_model_num_inputs(const nanoc_model *model);
size_t nanoc_model_num_outputs(const nanoc_model *model);

/* Describe input / output `index` (0-based, in signature order) into *out.
 * NANOC_ERR_INVALID_ARGUMENT if `index` is out of range. */
int nanoc_model_input_info(const nanoc_model *model, size_t index, nanoc_tensor_info *out);
int nanoc_model_output_info(const nanoc_model *model, size_t index, nanoc_tensor_info *out);

/* Set how many threads runs of this model may use: 0 = the default, n >= 1 =
 * at most n; negative is NANOC_ERR_INVALID_ARGUMENT. The runtime is
 * single-threaded today: every accepted value runs on the calling thread. */
int nanoc_model_set_threads(nanoc_model *model, int n);

/* Run the model once on its own arena. `inputs` holds one pointer per input
 * and `outputs` one per output, in signature order; each buffer has the
 * tensor's byte_size (a pointer may be NULL only if that size is 0). Inputs
 * are copied in, outputs copied out, so buffers may be reused right away.
 * Returns NANOC_ERR_RUN if a kernel fails. */
int nanoc_model_run(nanoc_model *model, const void *const *inputs, void *const *outputs);

/* Bytes of arena a run needs (0 for NULL): the minimum arena_len for
 * nanoc_model_run_with_arena (`nanoc inspect` prints the same number). */
size_t nanoc_model_arena_size(const nanoc_model *model);

/* Run the model once on the caller's arena instead of its own: the
 * allocation-free run mode. `arena` must hold at least
 * nanoc_model_arena_size(model) bytes and be aligned to NANOC_ARENA_ALIGN
 * (checked: NANOC_ERR_INVALID_ARGUMENT); its contents need no initialising.
 * Runs on the calling thread and performs no heap allocation unless it
 * fails. Several threads may run the same model at once, each with its own
 * arena. Buffers as for nanoc_model_run. */
int nanoc_model_run_with_arena(const nanoc_model *model, void *arena, size_t arena_len,
                               const void *const *inputs, void *const *outputs);

/* The message of the last failed call: on `model`, or for NULL, of the last
 * failed load (or call with a NULL model) on the calling thread. "" if there
 * was none; never NULL. The string stays valid until the next failed call
 * that records a message in the same place, or until the model is freed. */
const char *nanoc_last_error(const nanoc_model *model);

/* The runtime's version, e.g. "0.1.0" (a static string). */
const char *nanoc_version(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* NANOC_RUNTIME_H */
