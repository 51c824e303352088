//! The C API: `extern "C"` functions declared in
//! `runtime/include/nanoc_runtime.h` (guide and link lines: `docs/c-api.md`).
//!
//! Conventions, for every function:
//! - Nothing panics across the boundary: each body runs under
//!   [`std::panic::catch_unwind`] (in `std` builds with unwinding), and a
//!   caught panic (a runtime bug) becomes [`Status::Internal`]. Builds with
//!   `panic = "abort"` abort instead, as they must.
//! - Every pointer argument is checked for NULL; a bad argument is
//!   [`Status::InvalidArgument`] with a message, never a crash. Pointers that
//!   are not NULL must be valid as documented (the API cannot check that).
//! - Functions that can fail return an `int` status ([`Status`]: 0 is
//!   success) and record a message: in the model for calls on a model, and
//!   in a thread-local slot for loads and for calls whose model is NULL.
//!   [`nanoc_last_error`] returns it. Successful calls leave it unchanged.
//!
//! Threads: a model may be used from any thread. [`nanoc_model_run`] and
//! [`nanoc_model_set_threads`] need exclusive use of the model; the other
//! functions may be called concurrently with each other on the same model,
//! including [`nanoc_model_run_with_arena`] with distinct arenas.

use alloc::boxed::Box;
use alloc::ffi::CString;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ffi::{CStr, c_char, c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use crate::error::Error;
use crate::model::Model;

/// Status codes of the C API (`NANOC_OK`, `NANOC_ERR_*` in the header).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Success (`NANOC_OK`).
    Ok = 0,
    /// A NULL or out-of-range argument, wrong buffer count, or an arena that
    /// is too small or misaligned (`NANOC_ERR_INVALID_ARGUMENT`).
    InvalidArgument = 1,
    /// Opening or mapping the file, or allocating memory, failed (`NANOC_ERR_IO`).
    Io = 2,
    /// The bundle is corrupt, truncated or malformed (`NANOC_ERR_BAD_BUNDLE`).
    BadBundle = 3,
    /// A valid bundle this runtime cannot run: another format or kernel ABI
    /// version, code for another CPU architecture, or a step with more than
    /// [`MAX_KERNEL_ARGS`](crate::MAX_KERNEL_ARGS) arguments (`NANOC_ERR_UNSUPPORTED`).
    Unsupported = 4,
    /// A kernel reported an error during a run (`NANOC_ERR_RUN`).
    Run = 5,
    /// A bug in the runtime was caught (`NANOC_ERR_INTERNAL`).
    Internal = 6,
}

impl Status {
    /// The status a Rust [`Error`] maps to.
    pub fn of(e: &Error) -> Status {
        match e.root() {
            Error::Io { .. } => Status::Io,
            Error::TooShort { .. }
            | Error::BadMagic { .. }
            | Error::Truncated { .. }
            | Error::TrailingData { .. }
            | Error::ChecksumMismatch { .. }
            | Error::Malformed { .. } => Status::BadBundle,
            Error::UnsupportedVersion { .. }
            | Error::UnsupportedAbi { .. }
            | Error::WrongArch { .. }
            | Error::TooManyArgs { .. } => Status::Unsupported,
            Error::InputCount { .. }
            | Error::InputSize { .. }
            | Error::OutputCount { .. }
            | Error::OutputSize { .. }
            | Error::ArenaTooSmall { .. }
            | Error::ArenaMisaligned { .. } => Status::InvalidArgument,
            Error::Kernel { .. } => Status::Run,
            Error::File { .. } => Status::Internal, // `root` never returns `File`
        }
    }
}

/// Description of a model input or output (`nanoc_tensor_info`). All
/// pointers stay valid until the model is freed.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TensorInfo {
    /// NUL-terminated name (cut at the first NUL byte if the name has one).
    pub name: *const c_char,
    /// Element type code (`NANOC_DTYPE_*`, the bundle's codes: 1 = f32, ...).
    pub dtype: i32,
    /// Number of dimensions (0 for a scalar).
    pub rank: u32,
    /// `rank` dimensions (not NULL, even for a scalar).
    pub dims: *const u64,
    /// Size of the dense row-major tensor in bytes.
    pub byte_size: usize,
}

/// A loaded model (`nanoc_model`, opaque to C).
pub struct NanocModel {
    model: Model,
    input_names: Vec<CString>,
    output_names: Vec<CString>,
    threads: AtomicI32,
    error: ErrorSlot,
}

impl NanocModel {
    fn new(model: Model) -> NanocModel {
        let names = |ts: &[crate::TensorSpec]| ts.iter().map(|t| c_string(&t.name, true)).collect();
        NanocModel {
            input_names: names(model.inputs()),
            output_names: names(model.outputs()),
            model,
            threads: AtomicI32::new(0),
            error: ErrorSlot::new(),
        }
    }

    fn fail(&self, status: Status, msg: &str) -> c_int {
        self.error.set(c_string(msg, false));
        status as c_int
    }

    fn fail_with(&self, e: &Error) -> c_int {
        self.fail(Status::of(e), &e.to_string())
    }
}

/// A C string from `s`: cut at the first NUL byte (`cut`), or with NUL
/// bytes replaced by `?`.
fn c_string(s: &str, cut: bool) -> CString {
    let mut bytes = s.as_bytes().to_vec();
    match bytes.iter().position(|&b| b == 0) {
        Some(i) if cut => bytes.truncate(i),
        Some(_) => bytes.iter_mut().filter(|b| **b == 0).for_each(|b| *b = b'?'),
        None => {}
    }
    CString::new(bytes).unwrap_or_default()
}

/// A message slot shared by threads: a tiny spin lock around a C string.
struct ErrorSlot {
    locked: AtomicBool,
    msg: UnsafeCell<CString>,
}

// SAFETY: `msg` is only accessed with `locked` held.
unsafe impl Sync for ErrorSlot {}

impl ErrorSlot {
    fn new() -> ErrorSlot {
        ErrorSlot { locked: AtomicBool::new(false), msg: UnsafeCell::new(CString::default()) }
    }

    fn with<T>(&self, f: impl FnOnce(&mut CString) -> T) -> T {
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            core::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference.
        let out = f(unsafe { &mut *self.msg.get() });
        self.locked.store(false, Ordering::Release);
        out
    }

    fn set(&self, msg: CString) {
        let old = self.with(|m| core::mem::replace(m, msg));
        drop(old);
    }

    fn get(&self) -> *const c_char {
        self.with(|m| m.as_ptr())
    }
}

/// The calling thread's error slot (loads, and calls whose model is NULL).
#[cfg(feature = "std")]
mod thread_slot {
    use super::*;
    use core::cell::RefCell;

    std::thread_local! {
        static LAST: RefCell<CString> = RefCell::new(CString::default());
    }

    pub(super) fn set(msg: CString) {
        let _ = LAST.try_with(|m| m.replace(msg));
    }

    pub(super) fn get() -> *const c_char {
        LAST.try_with(|m| m.borrow().as_ptr()).unwrap_or(c"".as_ptr())
    }
}

/// The calling thread's error slot, kept in a pthread key (stable `no_std`
/// Rust has no thread-locals).
#[cfg(not(feature = "std"))]
mod thread_slot {
    use super::*;
    use core::sync::atomic::{AtomicU8, AtomicUsize};

    const UNINIT: u8 = 0;
    const BUSY: u8 = 1;
    const READY: u8 = 2;
    const FAILED: u8 = 3;
    static STATE: AtomicU8 = AtomicU8::new(UNINIT);
    static KEY: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn free_msg(p: *mut c_void) {
        // SAFETY: the key only ever holds pointers from `Box::into_raw`.
        drop(unsafe { Box::from_raw(p.cast::<CString>()) });
    }

    fn key() -> Option<libc::pthread_key_t> {
        loop {
            match STATE.compare_exchange(UNINIT, BUSY, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => {
                    let mut key: libc::pthread_key_t = 0;
                    // SAFETY: `key` is writable; `free_msg` matches the destructor ABI.
                    let ok = unsafe { libc::pthread_key_create(&mut key, Some(free_msg)) } == 0;
                    KEY.store(key as usize, Ordering::Relaxed);
                    STATE.store(if ok { READY } else { FAILED }, Ordering::Release);
                }
                Err(READY) => return Some(KEY.load(Ordering::Relaxed) as libc::pthread_key_t),
                Err(FAILED) => return None,
                Err(_) => core::hint::spin_loop(),
            }
        }
    }

    pub(super) fn set(msg: CString) {
        let Some(key) = key() else { return };
        let new = Box::into_raw(Box::new(msg));
        // SAFETY: `key` is a live key; the slot holds null or a boxed CString.
        unsafe {
            let old = libc::pthread_getspecific(key).cast::<CString>();
            if libc::pthread_setspecific(key, new.cast()) == 0 {
                if !old.is_null() {
                    drop(Box::from_raw(old));
                }
            } else {
                drop(Box::from_raw(new));
            }
        }
    }

    pub(super) fn get() -> *const c_char {
        let Some(key) = key() else { return c"".as_ptr() };
        // SAFETY: the slot holds null or a boxed CString owned by this thread.
        let p = unsafe { libc::pthread_getspecific(key) }.cast::<CString>();
        if p.is_null() { c"".as_ptr() } else { unsafe { (*p).as_ptr() } }
    }
}

/// Record `msg` for this thread and return `status`.
fn fail_thread(status: Status, msg: &str) -> c_int {
    thread_slot::set(c_string(msg, false));
    status as c_int
}

#[cfg(feature = "std")]
const PANIC_MSG: &str = "internal error: the nanoc runtime panicked (a bug; please report it)";

/// Run `f`, turning a panic into `on_panic` (and a message for `model`, or
/// for the thread).
#[cfg(feature = "std")]
fn guard<T>(model: Option<&NanocModel>, on_panic: T, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            match model {
                Some(m) => m.fail(Status::Internal, PANIC_MSG),
                None => fail_thread(Status::Internal, PANIC_MSG),
            };
            on_panic
        }
    }
}

/// Run `f` (a `no_std` build aborts on panic, so there is nothing to catch).
#[cfg(not(feature = "std"))]
fn guard<T>(_model: Option<&NanocModel>, _on_panic: T, f: impl FnOnce() -> T) -> T {
    f()
}

/// Run `f` on the model behind `model` (NULL is an invalid argument recorded
/// for the thread, with `what` naming the function), all under [`guard`].
///
/// # Safety
///
/// `model` is NULL or a live model.
unsafe fn with_model(model: *const NanocModel, what: &str, f: impl FnOnce(&NanocModel) -> c_int) -> c_int {
    guard(None, INTERNAL, || {
        // SAFETY: the caller promises NULL or a live model.
        match unsafe { model.as_ref() } {
            None => fail_thread(Status::InvalidArgument, &[what, ": model is NULL"].concat()),
            Some(m) => guard(Some(m), INTERNAL, || f(m)),
        }
    })
}

const INTERNAL: c_int = Status::Internal as c_int;
const OK: c_int = Status::Ok as c_int;

/// Store a loaded model (or the load error) for the C caller.
///
/// # Safety
///
/// `out` is valid for a write.
unsafe fn finish_load(result: crate::Result<Model>, out: *mut *mut NanocModel) -> c_int {
    match result {
        Ok(m) => {
            // SAFETY: the caller checked `out`.
            unsafe { *out = Box::into_raw(Box::new(NanocModel::new(m))) };
            OK
        }
        Err(e) => fail_thread(Status::of(&e), &e.to_string()),
    }
}

/// Load a bundle file (`nanoc_model_load_file`); see the header for the contract.
///
/// # Safety
///
/// `path` is NULL or a NUL-terminated string; `out` is NULL or valid for a
/// write. The file must not change while the model is alive.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanoc_model_load_file(path: *const c_char, out: *mut *mut NanocModel) -> c_int {
    guard(None, INTERNAL, || {
        if out.is_null() {
            return fail_thread(Status::InvalidArgument, "nanoc_model_load_file: out is NULL");
        }
        // SAFETY: `out` is not NULL and the caller promises it is writable.
        unsafe { *out = core::ptr::null_mut() };
        if path.is_null() {
            return fail_thread(Status::InvalidArgument, "nanoc_model_load_file: path is NULL");
        }
        // SAFETY: the caller promises a NUL-terminated string.
        let path = unsafe { CStr::from_ptr(path) };
        // SAFETY: `out` was checked above.
        unsafe { finish_load(Model::from_file_cstr(path), out) }
    })
}

/// Load a bundle from memory (`nanoc_model_load_memory`); the bytes are copied.
///
/// # Safety
///
/// `data` is NULL or valid for reads of `len` bytes; `out` is NULL or valid
/// for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanoc_model_load_memory(data: *const c_void, len: usize, out: *mut *mut NanocModel) -> c_int {
    guard(None, INTERNAL, || {
        if out.is_null() {
            return fail_thread(Status::InvalidArgument, "nanoc_model_load_memory: out is NULL");
        }
        // SAFETY: `out` is not NULL and the caller promises it is writable.
        unsafe { *out = core::ptr::null_mut() };
        if data.is_null() && len > 0 {
            return fail_thread(Status::InvalidArgument, "nanoc_model_load_memory: data is NULL");
        }
        let bytes: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: the caller promises `len` readable bytes at `data`.
            unsafe { core::slice::from_raw_parts(data.cast::<u8>(), len) }
        };
        // SAFETY: `out` was checked above.
        unsafe { finish_load(Model::from_bytes(bytes), out) }
    })
}

/// Free a model (`nanoc_model_free`); NULL is ignored.
///
/// # Safety
///
/// `model` is NULL or a live model from a load function, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanoc_model_free(model: *mut NanocModel) {
    guard(None, (), || {
        if !model.is_null() {
            // SAFETY: the caller hands back ownership of a model we boxed.
            drop(unsafe { Box::from_raw(model) });
        }
    })
}

/// Number of inputs (`nanoc_model_num_inputs`); 0 for NULL.
///
/// # Safety
///
/// `model` is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanoc_model_num_inputs(model: *const NanocModel) -> usize {
    // SAFETY: the caller promises NULL or a live model.
    guard(None, 0, || unsafe { model.as_ref() }.map_or(0, |m| m.model.inputs().len()))
}

/// Number of outputs (`nanoc_model_num_outputs`); 0 for NULL.
///
/// # Safety
///
/// `model` is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanoc_model_num_outputs(model: *const NanocModel) -> usize {
    // SAFETY: the caller promises NULL or a live model.
    guard(None, 0, || unsafe { model.as_ref() }.map_or(0, |m| m.model.outputs().len()))
}

/// Fill `out` for input (`output` false) or output `index`.
///
/// # Safety
///
/// `model` is NULL or a live model; `out` is NULL or valid for a write.
unsafe fn tensor_info(model: *const NanocModel, output: bool, index: usize, out: *mut TensorInfo) -> c_int {
    let what = if output { "nanoc_model_output_info" } else { "nanoc_model_input_info" };
    // SAFETY: forwarded contract.
    unsafe { with_model(model, what, |m| tensor_info_of(m, what, output, index, out)) }
}

/// [`tensor_info`] for a live model.
///
/// # Safety
///
/// `out` is NULL or valid for a write.
unsafe fn tensor_info_of(m: &NanocModel, what: &str, output: bool, index: usize, out: *mut TensorInfo) -> c_int {
    if out.is_null() {
        return m.fail(Status::InvalidArgument, &[what, ": out is NULL"].concat());
    }
    let (specs, names) = if output { (m.model.outputs(), &m.output_names) } else { (m.model.inputs(), &m.input_names) };
    let (Some(spec), Some(name)) = (specs.get(index), names.get(index)) else {
        let role = if output { "output" } else { "input" };
        let msg =
            alloc::format!("{what}: {role} index {index} is out of range (the model has {} {role}s)", specs.len());
        return m.fail(Status::InvalidArgument, &msg);
    };
    let byte_size = if output { m.model.output_len(index) } else { m.model.input_len(index) };
    let info = TensorInfo {
        name: name.as_ptr(),
        dtype: i32::from(spec.elem.code()),
        rank: spec.shape.len() as u32,
        dims: spec.shape.as_ptr(),
        byte_size,
    };
    // SAFETY: `out` is not NULL and the caller promises it is writable.
    unsafe { out.write(info) };
    OK
}

/// Describe input `index` (`nanoc_model_input_info`).
///
/// # Safety
///
/// `model` is NULL or a live model; `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanoc_model_input_info(model: *const NanocModel, index: usize, out: *mut TensorInfo) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { tensor_info(model, false, index, out) }
}

/// Describe output `index` (`nanoc_model_output_info`).
///
/// # Safety
///
/// `model` is NULL or a live model; `out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanoc_model_output_info(
    model: *const NanocModel,
    index: usize,
    out: *mut TensorInfo,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { tensor_info(model, true, index, out) }
}

/// Set the number of threads runs may use (`nanoc_model_set_threads`):
/// 0 = the default, n >= 1 = at most n. Runs are single-threaded today, so
/// any accepted value runs on the calling thread.
///
/// # Safety
///
/// `model` is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanoc_model_set_threads(model: *mut NanocModel, n: c_int) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with_model(model, "nanoc_model_set_threads", |m| {
            if n < 0 {
                let msg =
                    alloc::format!("nanoc_model_set_threads: thread count {n} is negative (use 0 for the default)");
                return m.fail(Status::InvalidArgument, &msg);
            }
            m.threads.store(n, Ordering::Relaxed);
            OK
        })
    }
}

/// Bytes a caller-provided arena needs (`nanoc_model_arena_size`); 0 for NULL.
///
/// # Safety
///
/// `model` is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanoc_model_arena_size(model: *const NanocModel) -> usize {
    // SAFETY: the caller promises NULL or a live model.
    guard(None, 0, || unsafe { model.as_ref() }.map_or(0, |m| m.model.arena_size() as usize))
}

/// Check the buffer arrays and run.
///
/// # Safety
///
/// As for [`nanoc_model_run_with_arena`]; `arena` has been checked, or is the
/// model's own arena and the caller has exclusive use of the model.
unsafe fn run(
    m: &NanocModel,
    what: &str,
    arena: *mut u8,
    inputs: *const *const c_void,
    outputs: *const *mut c_void,
) -> c_int {
    let model = &m.model;
    let (n_in, n_out) = (model.inputs().len(), model.outputs().len());
    if inputs.is_null() && n_in > 0 {
        return m.fail(Status::InvalidArgument, &[what, ": inputs is NULL"].concat());
    }
    if outputs.is_null() && n_out > 0 {
        return m.fail(Status::InvalidArgument, &[what, ": outputs is NULL"].concat());
    }
    // SAFETY: the caller promises arrays of `n_in` / `n_out` pointers.
    let input = |i: usize| unsafe { *inputs.add(i) }.cast::<u8>();
    // SAFETY: as above.
    let output = |i: usize| unsafe { *outputs.add(i) }.cast::<u8>();
    for i in 0..n_in {
        if input(i).is_null() && model.input_len(i) > 0 {
            return m.fail(Status::InvalidArgument, &alloc::format!("{what}: inputs[{i}] is NULL"));
        }
    }
    for i in 0..n_out {
        if output(i).is_null() && model.output_len(i) > 0 {
            return m.fail(Status::InvalidArgument, &alloc::format!("{what}: outputs[{i}] is NULL"));
        }
    }
    // SAFETY: the arena is valid (caller); the buffers are non-NULL where
    // they have bytes, and the caller promises their sizes.
    match unsafe { model.run_raw(arena, input, output) } {
        Ok(()) => OK,
        Err(e) => m.fail_with(&e),
    }
}

/// Run on the model's own arena (`nanoc_model_run`).
///
/// # Safety
///
/// `model` is NULL or a live model not used by another thread during the
/// call; `inputs` is NULL or an array of `num_inputs` pointers, each NULL or
/// valid for reads of that input's `byte_size`; likewise `outputs` for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanoc_model_run(
    model: *mut NanocModel,
    inputs: *const *const c_void,
    outputs: *const *mut c_void,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with_model(model, "nanoc_model_run", |m| {
            let arena = m.model.own_arena();
            // SAFETY: the caller has exclusive use of the model, hence of its arena.
            run(m, "nanoc_model_run", arena, inputs, outputs)
        })
    }
}

/// Run on a caller-provided arena (`nanoc_model_run_with_arena`): no heap
/// allocation unless the run fails.
///
/// # Safety
///
/// As for [`nanoc_model_run`], except that the model may be shared; `arena`
/// is NULL or valid for reads and writes of `arena_len` bytes and not used by
/// anything else during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanoc_model_run_with_arena(
    model: *const NanocModel,
    arena: *mut c_void,
    arena_len: usize,
    inputs: *const *const c_void,
    outputs: *const *mut c_void,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe {
        with_model(model, "nanoc_model_run_with_arena", |m| {
            if arena.is_null() && m.model.arena_size() > 0 {
                return m.fail(Status::InvalidArgument, "nanoc_model_run_with_arena: arena is NULL");
            }
            if let Err(e) = m.model.check_arena(arena as usize, arena_len) {
                return m.fail_with(&e);
            }
            // SAFETY: the arena was checked; the caller promises the rest.
            run(m, "nanoc_model_run_with_arena", arena.cast(), inputs, outputs)
        })
    }
}

/// The last error message (`nanoc_last_error`): the model's for a model, the
/// calling thread's for NULL; `""` if there was none. Never NULL.
///
/// # Safety
///
/// `model` is NULL or a live model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanoc_last_error(model: *const NanocModel) -> *const c_char {
    // SAFETY: the caller promises NULL or a live model.
    guard(None, c"".as_ptr(), || match unsafe { model.as_ref() } {
        Some(m) => m.error.get(),
        None => thread_slot::get(),
    })
}

/// The runtime version (`nanoc_version`), e.g. `"0.1.0"`; a static string.
#[unsafe(no_mangle)]
pub extern "C" fn nanoc_version() -> *const c_char {
    guard(None, c"".as_ptr(), || VERSION.as_ptr())
}

const VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
    Ok(v) => v,
    Err(_) => c"unknown",
};

impl core::fmt::Debug for NanocModel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NanocModel").field("model", &self.model).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::encode_bundle;
    use crate::test_util::sample_spec;
    use core::ptr::{null, null_mut};

    fn text(p: *const c_char) -> String {
        assert!(!p.is_null());
        // SAFETY: the API returns NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string()
    }

    fn thread_error() -> String {
        // SAFETY: NULL is allowed.
        text(unsafe { nanoc_last_error(null()) })
    }

    fn load(bytes: &[u8]) -> *mut NanocModel {
        let mut m = null_mut();
        // SAFETY: valid buffer and out pointer.
        let status = unsafe { nanoc_model_load_memory(bytes.as_ptr().cast(), bytes.len(), &mut m) };
        assert_eq!(status, OK, "{}", thread_error());
        m
    }

    #[test]
    fn tensor_info_layout_matches_the_header() {
        // The header's struct: pointer, int32_t, uint32_t, pointer, size_t.
        let p = core::mem::size_of::<usize>();
        assert_eq!(core::mem::offset_of!(TensorInfo, dtype), p);
        assert_eq!(core::mem::offset_of!(TensorInfo, rank), p + 4);
        assert_eq!(core::mem::offset_of!(TensorInfo, dims), 2 * p.max(8));
        assert_eq!(core::mem::size_of::<TensorInfo>(), if p == 8 { 32 } else { 20 });
    }

    #[test]
    fn version_and_status_codes() {
        assert_eq!(text(nanoc_version()), env!("CARGO_PKG_VERSION"));
        let codes = [
            Status::Ok,
            Status::InvalidArgument,
            Status::Io,
            Status::BadBundle,
            Status::Unsupported,
            Status::Run,
            Status::Internal,
        ];
        for (i, s) in codes.into_iter().enumerate() {
            assert_eq!(s as i32, i as i32);
        }
    }

    #[test]
    fn null_arguments_are_errors_not_crashes() {
        let mut m = null_mut();
        // SAFETY: every pointer is NULL or valid.
        unsafe {
            assert_eq!(nanoc_model_load_file(null(), &mut m), Status::InvalidArgument as c_int);
            assert_eq!(thread_error(), "nanoc_model_load_file: path is NULL");
            assert_eq!(nanoc_model_load_file(c"x".as_ptr(), null_mut()), Status::InvalidArgument as c_int);
            assert_eq!(thread_error(), "nanoc_model_load_file: out is NULL");
            assert_eq!(nanoc_model_load_memory(null(), 5, &mut m), Status::InvalidArgument as c_int);
            assert_eq!(thread_error(), "nanoc_model_load_memory: data is NULL");
            assert!(m.is_null());
            nanoc_model_free(null_mut());
            assert_eq!(nanoc_model_num_inputs(null()), 0);
            assert_eq!(nanoc_model_num_outputs(null()), 0);
            assert_eq!(nanoc_model_arena_size(null()), 0);
            let mut info = core::mem::zeroed::<TensorInfo>();
            assert_eq!(nanoc_model_input_info(null(), 0, &mut info), Status::InvalidArgument as c_int);
            assert_eq!(thread_error(), "nanoc_model_input_info: model is NULL");
            assert_eq!(nanoc_model_output_info(null(), 0, &mut info), Status::InvalidArgument as c_int);
            assert_eq!(nanoc_model_set_threads(null_mut(), 1), Status::InvalidArgument as c_int);
            assert_eq!(nanoc_model_run(null_mut(), null(), null()), Status::InvalidArgument as c_int);
            assert_eq!(thread_error(), "nanoc_model_run: model is NULL");
            let status = nanoc_model_run_with_arena(null(), null_mut(), 0, null(), null());
            assert_eq!(status, Status::InvalidArgument as c_int);

            let m = load(&encode_bundle(&sample_spec()));
            assert_eq!(text(nanoc_last_error(m)), "");
            assert_eq!(nanoc_model_input_info(m, 0, null_mut()), Status::InvalidArgument as c_int);
            assert_eq!(text(nanoc_last_error(m)), "nanoc_model_input_info: out is NULL");
            assert_eq!(nanoc_model_run(m, null(), null()), Status::InvalidArgument as c_int);
            assert_eq!(text(nanoc_last_error(m)), "nanoc_model_run: inputs is NULL");
            let x = 1f32.to_le_bytes();
            let ins = [x.as_ptr().cast::<c_void>()];
            assert_eq!(nanoc_model_run(m, ins.as_ptr(), null()), Status::InvalidArgument as c_int);
            assert_eq!(text(nanoc_last_error(m)), "nanoc_model_run: outputs is NULL");
            let outs = [null_mut::<c_void>(); 2];
            assert_eq!(nanoc_model_run(m, ins.as_ptr(), outs.as_ptr()), Status::InvalidArgument as c_int);
            assert_eq!(text(nanoc_last_error(m)), "nanoc_model_run: outputs[0] is NULL");
            let null_in = [null::<c_void>()];
            assert_eq!(nanoc_model_run(m, null_in.as_ptr(), outs.as_ptr()), Status::InvalidArgument as c_int);
            assert_eq!(text(nanoc_last_error(m)), "nanoc_model_run: inputs[0] is NULL");
            let status = nanoc_model_run_with_arena(m, null_mut(), 64, ins.as_ptr(), outs.as_ptr());
            assert_eq!(status, Status::InvalidArgument as c_int);
            assert_eq!(text(nanoc_last_error(m)), "nanoc_model_run_with_arena: arena is NULL");
            nanoc_model_free(m);
        }
    }

    #[test]
    fn load_errors_set_the_thread_error_per_thread() {
        let mut bytes = encode_bundle(&sample_spec());
        bytes[100] ^= 0xFF;
        let mut m = null_mut();
        // SAFETY: valid buffer and out pointer.
        let status = unsafe { nanoc_model_load_memory(bytes.as_ptr().cast(), bytes.len(), &mut m) };
        assert_eq!(status, Status::BadBundle as c_int);
        assert!(m.is_null());
        assert!(thread_error().starts_with("checksum mismatch: "), "{}", thread_error());
        // Another thread has its own slot.
        assert_eq!(std::thread::spawn(thread_error).join().unwrap(), "");

        // SAFETY: as above.
        let status = unsafe { nanoc_model_load_memory(bytes.as_ptr().cast(), 0, &mut m) };
        assert_eq!(status, Status::BadBundle as c_int);
        assert_eq!(thread_error(), "truncated: file has 0 bytes, less than the 64-byte bundle header");

        // SAFETY: a valid path and out pointer.
        let status = unsafe { nanoc_model_load_file(c"/nonexistent/m.nanob".as_ptr(), &mut m) };
        assert_eq!(status, Status::Io as c_int);
        assert!(thread_error().starts_with("/nonexistent/m.nanob: cannot open the bundle: "), "{}", thread_error());

        let mut spec = sample_spec();
        spec.triple = "riscv64-unknown-linux-gnu".into();
        let bytes = encode_bundle(&spec);
        // SAFETY: as above.
        let status = unsafe { nanoc_model_load_memory(bytes.as_ptr().cast(), bytes.len(), &mut m) };
        assert_eq!(status, Status::Unsupported as c_int);
    }

    #[test]
    fn info_and_threads() {
        let m = load(&encode_bundle(&sample_spec()));
        // SAFETY: `m` is live; `info` is writable.
        unsafe {
            assert_eq!((nanoc_model_num_inputs(m), nanoc_model_num_outputs(m)), (1, 2));
            assert_eq!(nanoc_model_arena_size(m), 64);
            let mut info = core::mem::zeroed::<TensorInfo>();
            assert_eq!(nanoc_model_output_info(m, 1, &mut info), OK);
            assert_eq!(text(info.name), "w");
            assert_eq!((info.dtype, info.rank, info.byte_size), (1, 0, 4));
            assert!(!info.dims.is_null());
            assert_eq!(nanoc_model_input_info(m, 1, &mut info), Status::InvalidArgument as c_int);
            assert_eq!(
                text(nanoc_last_error(m)),
                "nanoc_model_input_info: input index 1 is out of range (the model has 1 inputs)"
            );
            assert_eq!(nanoc_model_set_threads(m, 4), OK);
            assert_eq!((*m).threads.load(Ordering::Relaxed), 4);
            assert_eq!(nanoc_model_set_threads(m, -1), Status::InvalidArgument as c_int);
            nanoc_model_free(m);
        }
    }

    #[test]
    fn panics_become_internal_errors() {
        let status = guard(None, INTERNAL, || -> c_int { panic!("a bug") });
        assert_eq!(status, Status::Internal as c_int);
        assert_eq!(thread_error(), PANIC_MSG);
        let m = load(&encode_bundle(&sample_spec()));
        // SAFETY: `m` is live.
        let status = unsafe { with_model(m, "test", |_| -> c_int { panic!("a bug") }) };
        assert_eq!(status, Status::Internal as c_int);
        // SAFETY: as above.
        unsafe {
            assert_eq!(text(nanoc_last_error(m)), PANIC_MSG);
            nanoc_model_free(m);
        }
    }

    #[test]
    fn names_with_nul_bytes_are_cut() {
        assert_eq!(c_string("a\0b", true).as_bytes(), b"a");
        assert_eq!(c_string("a\0b", false).as_bytes(), b"a?b");
    }

    #[cfg(all(target_arch = "x86_64", unix))]
    #[test]
    fn runs_and_errors() {
        use crate::test_util::FAIL1;
        let m = load(&encode_bundle(&sample_spec()));
        let x = 6.5f32.to_le_bytes();
        let (mut y, mut w) = ([0u8; 4], [0u8; 4]);
        let ins = [x.as_ptr().cast::<c_void>()];
        let outs = [y.as_mut_ptr().cast::<c_void>(), w.as_mut_ptr().cast::<c_void>()];
        #[repr(align(64))]
        struct Arena([u8; 128]);
        let mut arena = Arena([0; 128]);
        // SAFETY: `m` is live; the buffers have the sizes the model reports.
        unsafe {
            assert_eq!(nanoc_model_run(m, ins.as_ptr(), outs.as_ptr()), OK);
            assert_eq!((f32::from_le_bytes(y), f32::from_le_bytes(w)), (6.5, 2.5));
            y = [0; 4];
            let a = arena.0.as_mut_ptr().cast::<c_void>();
            assert_eq!(nanoc_model_run_with_arena(m, a, 128, ins.as_ptr(), outs.as_ptr()), OK);
            assert_eq!(f32::from_le_bytes(y), 6.5);
            let status = nanoc_model_run_with_arena(m, a, 63, ins.as_ptr(), outs.as_ptr());
            assert_eq!(status, Status::InvalidArgument as c_int);
            assert_eq!(text(nanoc_last_error(m)), "arena of 63 bytes is too small: the model needs 64 bytes");
            let status = nanoc_model_run_with_arena(m, a.byte_add(8), 64, ins.as_ptr(), outs.as_ptr());
            assert_eq!(status, Status::InvalidArgument as c_int);
            nanoc_model_free(m);
        }

        let mut spec = sample_spec();
        spec.kernels[0].code = FAIL1.to_vec();
        let m = load(&encode_bundle(&spec));
        // SAFETY: as above.
        unsafe {
            assert_eq!(nanoc_model_run(m, ins.as_ptr(), outs.as_ptr()), Status::Run as c_int);
            assert_eq!(text(nanoc_last_error(m)), "step 0 (node \"copy_in\", kernel \"copy4\"): index out of range");
            nanoc_model_free(m);
        }
    }
}
