//! [`Model`]: a loaded, validated, executable bundle.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ffi::CStr;
use core::fmt;
use core::ops::Range;

use crate::bundle::read::parse;
use crate::bundle::{Region, TensorSpec};
use crate::error::{Error, OsError, Result};
use crate::exec::{ExecCode, KernelFn, check_host_triple};
use crate::sys::{self, Mapping, Protect};

/// Most arguments a plan step may pass to its kernel. Runs build each step's
/// argument pointer array on the stack (`MAX_KERNEL_ARGS` pointers, 2 KiB on
/// a 64-bit host), so they need no allocation and work on any arena; a
/// bundle with a larger step is refused at load with [`Error::TooManyArgs`].
pub const MAX_KERNEL_ARGS: usize = 256;

/// Alignment in bytes that an arena passed to [`Model::run_with_arena`] must
/// have (the compiler aligns every arena slot to it).
pub const ARENA_ALIGN: usize = 64;

/// One kernel argument: an offset into the arena or the weights. The pointer
/// is computed at run time, so any arena can be used.
#[derive(Debug, Clone, Copy)]
struct Arg {
    offset: usize,
    weights: bool,
}

/// One plan step: a kernel and its arguments (a range of [`Model::args`]).
#[derive(Debug)]
struct StepExec {
    kernel: usize,
    args: Range<usize>,
}

/// A loaded, validated, executable bundle.
///
/// Loading validates the whole bundle, refuses code for another CPU
/// architecture, copies the CODE section into fresh read+execute memory,
/// allocates the model's own arena (zeroed, page aligned) and turns every
/// step argument into an (arena or weights, offset) pair.
///
/// Three ways to run it:
/// - [`Model::run`] returns freshly allocated output buffers;
/// - [`Model::run_into`] writes the outputs into caller buffers and performs
///   no heap allocation;
/// - [`Model::run_with_arena`] also uses a caller-provided arena instead of
///   the model's own: no allocation, and since it only needs `&self`, one
///   model can run on several threads at once, each with its own arena.
///
/// Runs are single-threaded. The arena is not cleared between runs: kernels
/// are expected to fully write their outputs. Only a failed run allocates
/// (to build its error).
///
/// # Trust
///
/// Validation protects against corrupt and truncated files, not malicious
/// ones: running a model executes its machine code natively. Only load
/// bundles you would also be willing to run as a program.
pub struct Model {
    target: String,
    triple: String,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    /// Byte range of each input and output in the arena (validated).
    input_ranges: Vec<Range<usize>>,
    output_ranges: Vec<Range<usize>>,
    arena_size: u64,
    /// `arena_size` as a `usize` (checked at load).
    arena_len: usize,
    weights_size: u64,
    code_size: u64,
    kernel_names: Vec<String>,
    kernel_fns: Vec<KernelFn>,
    steps: Vec<StepExec>,
    /// Node name of each step, for errors.
    step_nodes: Vec<String>,
    /// All steps' arguments, back to back.
    args: Vec<Arg>,
    /// Start of the WEIGHTS section inside `bytes`.
    weights_base: *const u8,
    /// The model's own arena (used by `run` and `run_into`).
    arena: Mapping,
    // The fields below own the memory the pointers above point into; they
    // are never accessed after loading, only kept alive.
    _code: ExecCode,
    /// The bundle bytes: the read-only file mapping, or an anonymous
    /// read-only copy. Weight pointers point into it.
    _bytes: Mapping,
}

// SAFETY: the raw pointers point into memory owned by the `Model` itself
// (`arena`, `_code`, `_bytes`), which does not move when the `Model` moves
// and is not shared with anything else. The own arena is only written
// through `&mut self` (`run`, `run_into`); `&self` methods read immutable
// data, and `run_with_arena` writes only the caller's arena.
unsafe impl Send for Model {}
// SAFETY: see above.
unsafe impl Sync for Model {}

impl Model {
    /// Load a bundle file: map it read-only, validate it, and prepare it for
    /// execution. The weights are used in place from the mapping (zero copy).
    ///
    /// Errors are prefixed with the path, e.g. `"m.nanob: checksum mismatch: ..."`.
    ///
    /// The file must not be modified or truncated while the `Model` is alive
    /// (as with any memory-mapped file, that would change the weights under
    /// the model or crash the process).
    #[cfg(feature = "std")]
    pub fn from_file(path: &std::path::Path) -> Result<Model> {
        let shown = path.display().to_string();
        let c_path = path_to_cstring(path).map_err(|e| e.in_file(&shown))?;
        Self::load_file(&c_path).map_err(|e| e.in_file(&shown))
    }

    /// [`Model::from_file`] for a NUL-terminated path (as the C API gets it).
    pub fn from_file_cstr(path: &CStr) -> Result<Model> {
        Self::load_file(path).map_err(|e| e.in_file(&path.to_string_lossy()))
    }

    fn load_file(path: &CStr) -> Result<Model> {
        let map = Mapping::file(path).map_err(|(action, error)| Error::Io { action: action.to_string(), error })?;
        Self::load(map)
    }

    /// Load a bundle from memory. The bytes are copied into an owned,
    /// page-aligned (hence 64-byte aligned) read-only buffer first.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let map = Mapping::copy_of(bytes, Protect::Read)
            .map_err(|error| Error::Io { action: format!("allocate {} bytes for the bundle", bytes.len()), error })?;
        Self::load(map)
    }

    fn load(bytes: Mapping) -> Result<Model> {
        let layout = parse(bytes.as_slice())?;
        check_host_triple(&layout.triple)?;
        for (step, s) in layout.steps.iter().enumerate() {
            if s.args.len() > MAX_KERNEL_ARGS {
                return Err(Error::TooManyArgs {
                    step,
                    node: s.node.clone(),
                    count: s.args.len(),
                    max: MAX_KERNEL_ARGS,
                });
            }
        }

        let code = ExecCode::new(layout.code)?;
        // SAFETY: each kernel offset was validated to lie inside CODE (with a
        // nonzero size); that it is a valid entry point is the bundle's promise.
        let kernel_fns: Vec<KernelFn> = layout.kernels.iter().map(|k| unsafe { code.kernel(k.offset) }).collect();

        let arena_len = to_usize(layout.arena_size, "arena")?;
        let arena = Mapping::anon(arena_len)
            .map_err(|error| Error::Io { action: format!("allocate an arena of {arena_len} bytes"), error })?;

        // Validation guarantees offset + size <= region length for every arg,
        // and the arena length and the weights (in memory) fit in `usize`, so
        // these casts are lossless.
        let mut args = Vec::with_capacity(layout.steps.iter().map(|s| s.args.len()).sum());
        let mut steps = Vec::with_capacity(layout.steps.len());
        let mut step_nodes = Vec::with_capacity(layout.steps.len());
        for s in layout.steps {
            let start = args.len();
            args.extend(s.args.iter().map(|a| Arg { offset: a.offset as usize, weights: a.region == Region::Weights }));
            steps.push(StepExec { kernel: s.kernel as usize, args: start..args.len() });
            step_nodes.push(s.node);
        }

        let ranges = |ts: &[TensorSpec]| -> Vec<Range<usize>> {
            ts.iter()
                .map(|t| {
                    let start = t.offset as usize;
                    start..start + t.byte_len().unwrap_or(0) as usize
                })
                .collect()
        };
        let input_ranges = ranges(&layout.inputs);
        let output_ranges = ranges(&layout.outputs);

        Ok(Model {
            input_ranges,
            output_ranges,
            arena_size: layout.arena_size,
            arena_len,
            weights_size: layout.weights.len() as u64,
            code_size: layout.code.len() as u64,
            kernel_names: layout.kernels.into_iter().map(|k| k.name).collect(),
            kernel_fns,
            steps,
            step_nodes,
            args,
            weights_base: layout.weights.as_ptr(),
            target: layout.target,
            triple: layout.triple,
            inputs: layout.inputs,
            outputs: layout.outputs,
            arena,
            _code: code,
            _bytes: bytes,
        })
    }

    /// Target name recorded by the compiler.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Target triple the code was compiled for.
    pub fn triple(&self) -> &str {
        &self.triple
    }

    /// Input tensors, in the order [`Model::run`] expects them.
    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    /// Output tensors, in the order [`Model::run`] returns them.
    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// Byte length of input `i` (panics if `i` is out of range).
    pub fn input_len(&self, i: usize) -> usize {
        self.input_ranges[i].len()
    }

    /// Byte length of output `i` (panics if `i` is out of range).
    pub fn output_len(&self, i: usize) -> usize {
        self.output_ranges[i].len()
    }

    /// Size of the arena in bytes: the length a caller-provided arena for
    /// [`Model::run_with_arena`] needs.
    pub fn arena_size(&self) -> u64 {
        self.arena_size
    }

    /// Number of kernels in the bundle.
    pub fn kernel_count(&self) -> usize {
        self.kernel_fns.len()
    }

    /// Number of plan steps executed per run.
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }

    /// Size of the WEIGHTS section in bytes.
    pub fn weights_size(&self) -> u64 {
        self.weights_size
    }

    /// Size of the CODE section in bytes.
    pub fn code_size(&self) -> u64 {
        self.code_size
    }

    /// Run the model once on its own arena.
    ///
    /// `inputs` are the raw little-endian bytes of each input, in signature
    /// order; their count and byte lengths are checked before anything is
    /// written. They are copied into the arena, every step runs in order, and
    /// each output's bytes are returned in signature order. A kernel that
    /// returns a nonzero status stops the run with [`Error::Kernel`].
    pub fn run(&mut self, inputs: &[&[u8]]) -> Result<Vec<Vec<u8>>> {
        let mut out: Vec<Vec<u8>> = self.output_ranges.iter().map(|r| alloc::vec![0; r.len()]).collect();
        let mut views: Vec<&mut [u8]> = out.iter_mut().map(|v| v.as_mut_slice()).collect();
        self.run_into(inputs, &mut views)?;
        Ok(out)
    }

    /// Run the model once on its own arena, writing each output into the
    /// buffer of its exact byte length in `outputs` (signature order).
    /// Performs no heap allocation unless it fails.
    pub fn run_into(&mut self, inputs: &[&[u8]], outputs: &mut [&mut [u8]]) -> Result<()> {
        self.check_io(inputs, outputs)?;
        let arena = self.arena.as_ptr();
        // SAFETY: the own arena is `arena_len` writable bytes, page aligned,
        // and `&mut self` makes this the only run using it; the buffers have
        // the checked lengths and cannot alias the arena.
        unsafe { self.run_raw(arena, |i| inputs[i].as_ptr(), |i| outputs[i].as_mut_ptr()) }
    }

    /// Run the model once on a caller-provided arena instead of its own: the
    /// allocation-free, single-threaded run mode.
    ///
    /// `arena` must be at least [`Model::arena_size`] bytes long and aligned
    /// to [`ARENA_ALIGN`] (64) bytes; its previous contents do not matter
    /// (kernels fully write what they read back). Inputs and outputs are as
    /// for [`Model::run_into`]. No heap allocation happens unless the run
    /// fails. Because only the arena is written, several threads may run the
    /// same model at once, each with its own arena.
    pub fn run_with_arena(&self, arena: &mut [u8], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) -> Result<()> {
        self.check_arena(arena.as_ptr() as usize, arena.len())?;
        self.check_io(inputs, outputs)?;
        // SAFETY: the arena was checked (length, alignment) and is borrowed
        // mutably, so nothing else uses it or aliases the buffers.
        unsafe { self.run_raw(arena.as_mut_ptr(), |i| inputs[i].as_ptr(), |i| outputs[i].as_mut_ptr()) }
    }

    /// Check a caller-provided arena's length and alignment.
    pub(crate) fn check_arena(&self, address: usize, len: usize) -> Result<()> {
        if len < self.arena_len {
            return Err(Error::ArenaTooSmall { expected: self.arena_size, actual: len as u64 });
        }
        if self.arena_len > 0 && !address.is_multiple_of(ARENA_ALIGN) {
            return Err(Error::ArenaMisaligned { address, align: ARENA_ALIGN });
        }
        Ok(())
    }

    fn check_io(&self, inputs: &[&[u8]], outputs: &[&mut [u8]]) -> Result<()> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::InputCount { expected: self.inputs.len(), actual: inputs.len() });
        }
        for (index, ((spec, range), data)) in self.inputs.iter().zip(&self.input_ranges).zip(inputs).enumerate() {
            if data.len() != range.len() {
                return Err(Error::InputSize {
                    index,
                    name: spec.name.clone(),
                    elem: spec.elem.name(),
                    shape: spec.shape.clone(),
                    expected: range.len() as u64,
                    actual: data.len() as u64,
                });
            }
        }
        if outputs.len() != self.outputs.len() {
            return Err(Error::OutputCount { expected: self.outputs.len(), actual: outputs.len() });
        }
        for (index, ((spec, range), buf)) in self.outputs.iter().zip(&self.output_ranges).zip(outputs).enumerate() {
            if buf.len() != range.len() {
                return Err(Error::OutputSize {
                    index,
                    name: spec.name.clone(),
                    elem: spec.elem.name(),
                    shape: spec.shape.clone(),
                    expected: range.len() as u64,
                    actual: buf.len() as u64,
                });
            }
        }
        Ok(())
    }

    /// The model's own arena (for the C API's `nanoc_model_run`).
    pub(crate) fn own_arena(&self) -> *mut u8 {
        self.arena.as_ptr()
    }

    /// Copy the inputs into `arena`, run every step, copy the outputs out.
    /// Performs no heap allocation unless a kernel fails.
    ///
    /// # Safety
    ///
    /// `arena` must be valid for reads and writes of `arena_len` bytes,
    /// [`ARENA_ALIGN`]-aligned, and used by nothing else during the call.
    /// `input(i)` must be valid for reads of `input_len(i)` bytes and
    /// `output(i)` for writes of `output_len(i)` bytes (either may be
    /// anything, even null, when that length is 0). Buffers may overlap each
    /// other or the arena.
    pub(crate) unsafe fn run_raw(
        &self,
        arena: *mut u8,
        input: impl Fn(usize) -> *const u8,
        mut output: impl FnMut(usize) -> *mut u8,
    ) -> Result<()> {
        for (i, r) in self.input_ranges.iter().enumerate() {
            if !r.is_empty() {
                // SAFETY: `r` lies inside the arena (validated at load); the
                // caller guarantees the source; `copy` allows overlap.
                unsafe { core::ptr::copy(input(i), arena.add(r.start), r.len()) };
            }
        }

        let mut ptrs = [core::ptr::null_mut::<u8>(); MAX_KERNEL_ARGS];
        for (step, s) in self.steps.iter().enumerate() {
            // `s.args.len() <= MAX_KERNEL_ARGS` was checked at load.
            for (slot, a) in ptrs.iter_mut().zip(&self.args[s.args.clone()]) {
                let base = if a.weights { self.weights_base.cast_mut() } else { arena };
                *slot = base.wrapping_add(a.offset);
            }
            let f = self.kernel_fns[s.kernel];
            // SAFETY: the kernel is machine code for this architecture from a
            // validated bundle, called with its ABI; every argument pointer
            // addresses a validated range of the arena or the weights.
            let code = unsafe { f(ptrs.as_ptr()) };
            if code != 0 {
                return Err(Error::Kernel {
                    step,
                    node: self.step_nodes[step].clone(),
                    kernel: self.kernel_names[s.kernel].clone(),
                    code,
                });
            }
        }

        for (i, r) in self.output_ranges.iter().enumerate() {
            if !r.is_empty() {
                // SAFETY: as for the inputs; no kernel is running.
                unsafe { core::ptr::copy(arena.add(r.start), output(i), r.len()) };
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("target", &self.target)
            .field("triple", &self.triple)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("arena_size", &self.arena_size)
            .field("kernels", &self.kernel_names)
            .field("steps", &self.steps.len())
            .field("weights_size", &self.weights_size)
            .field("code_size", &self.code_size)
            .finish_non_exhaustive()
    }
}

fn to_usize(n: u64, what: &str) -> Result<usize> {
    usize::try_from(n).map_err(|_| Error::Io {
        action: format!("allocate the {what} ({n} bytes, more than the address space)"),
        error: OsError::from_raw(sys::ENOMEM),
    })
}

/// The path as a C string (unix paths are bytes; elsewhere, its UTF-8 form).
#[cfg(feature = "std")]
fn path_to_cstring(path: &std::path::Path) -> Result<alloc::ffi::CString> {
    #[cfg(unix)]
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).to_vec();
    #[cfg(not(unix))]
    let bytes = path.to_string_lossy().into_owned().into_bytes();
    alloc::ffi::CString::new(bytes).map_err(|_| Error::Io {
        action: "open the bundle (the path contains a NUL byte)".to_string(),
        error: OsError::from_raw(sys::EINVAL),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{BufRef, encode_bundle};
    use crate::test_util::sample_spec;

    fn load_err(bytes: &[u8]) -> String {
        match Model::from_bytes(bytes) {
            Ok(_) => panic!("expected loading to fail"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn wrong_arch_is_rejected_before_mapping_code() {
        let other = if std::env::consts::ARCH == "x86_64" { "aarch64" } else { "x86_64" };
        let mut spec = sample_spec();
        spec.triple = format!("{other}-unknown-linux-gnu");
        assert_eq!(
            load_err(&encode_bundle(&spec)),
            format!(
                "bundle is compiled for {other} (target triple \"{other}-unknown-linux-gnu\") but this host is {}; refusing to run its code",
                std::env::consts::ARCH
            )
        );
    }

    #[test]
    fn load_errors_from_bytes_are_format_errors() {
        let mut bytes = encode_bundle(&sample_spec());
        bytes[8] = 3;
        assert_eq!(load_err(&bytes), "unsupported bundle format version 3 (this runtime reads version 1)");
        assert_eq!(load_err(&[]), "truncated: file has 0 bytes, less than the 64-byte bundle header");
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("nanoc-runtime-test-{}-bad.nanob", std::process::id()));
        let mut bytes = encode_bundle(&sample_spec());
        let n = bytes.len();
        bytes.truncate(n - 1);
        std::fs::write(&path, &bytes).unwrap();
        let e = Model::from_file(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(e.to_string(), format!("{}: truncated: header says {n} bytes, file has {}", path.display(), n - 1));
        assert!(matches!(e.root(), Error::Truncated { .. }));

        let missing = dir.join("nanoc-runtime-test-does-not-exist.nanob");
        let e = Model::from_file(&missing).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: cannot open the bundle: ", missing.display())), "{e}");
    }

    #[test]
    fn steps_with_too_many_args_are_refused_at_load() {
        let mut spec = sample_spec();
        let arg = BufRef { region: Region::Arena, offset: 0, size: 4 };
        spec.steps[1].args = vec![arg; MAX_KERNEL_ARGS];
        assert!(Model::from_bytes(&encode_bundle(&spec)).is_ok());
        spec.steps[1].args.push(arg);
        assert_eq!(
            load_err(&encode_bundle(&spec)),
            "step 1 (node \"copy_out\") passes 257 arguments to its kernel; this runtime supports at most 256"
        );
    }

    #[test]
    fn accessors() {
        let spec = sample_spec();
        let m = Model::from_bytes(&encode_bundle(&spec)).unwrap();
        assert_eq!(m.target(), "test-host");
        assert_eq!(m.triple(), spec.triple);
        assert_eq!(m.inputs(), &spec.inputs[..]);
        assert_eq!(m.outputs(), &spec.outputs[..]);
        assert_eq!(m.arena_size(), 64);
        assert_eq!((m.input_len(0), m.output_len(0), m.output_len(1)), (4, 4, 4));
        assert_eq!(m.kernel_count(), 2);
        assert_eq!(m.step_count(), 3);
        assert_eq!(m.weights_size(), 8);
        assert_eq!(m.code_size(), 22);
        assert!(format!("{m:?}").contains("copy4"));
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Model>();
    }

    #[cfg(all(target_arch = "x86_64", unix))]
    mod x86_64 {
        use super::*;
        use crate::bundle::Step;
        use crate::test_util::FAIL42;

        fn f32s(out: &[u8]) -> f32 {
            f32::from_le_bytes(out.try_into().unwrap())
        }

        #[test]
        fn runs_kernels_in_order() {
            let mut m = Model::from_bytes(&encode_bundle(&sample_spec())).unwrap();
            for x in [3.25f32, -1.0, 0.0] {
                let out = m.run(&[&x.to_le_bytes()]).unwrap();
                assert_eq!(out.len(), 2);
                assert_eq!(f32s(&out[0]), x);
                assert_eq!(f32s(&out[1]), 2.5);
            }
        }

        #[test]
        fn runs_from_file_with_weights_in_place() {
            let path = std::env::temp_dir().join(format!("nanoc-runtime-test-{}-ok.nanob", std::process::id()));
            std::fs::write(&path, encode_bundle(&sample_spec())).unwrap();
            let m = Model::from_file(&path);
            std::fs::remove_file(&path).unwrap(); // the mapping stays valid
            let mut m = m.unwrap();
            let out = m.run(&[&7.5f32.to_le_bytes()]).unwrap();
            assert_eq!(f32s(&out[0]), 7.5);
            assert_eq!(f32s(&out[1]), 2.5);
            // The model can move to another thread.
            let out = std::thread::spawn(move || m.run(&[&1.0f32.to_le_bytes()]).unwrap()).join().unwrap();
            assert_eq!(f32s(&out[0]), 1.0);
        }

        #[test]
        fn kernel_errors_name_step_node_and_kernel() {
            let mut spec = sample_spec();
            spec.steps.insert(
                1,
                Step {
                    kernel: 1,
                    node: "gather".into(),
                    args: vec![BufRef { region: Region::Arena, offset: 0, size: 4 }],
                },
            );
            let mut m = Model::from_bytes(&encode_bundle(&spec)).unwrap();
            let e = m.run(&[&1.0f32.to_le_bytes()]).unwrap_err();
            assert_eq!(e.to_string(), "step 1 (node \"gather\", kernel \"fail1\"): index out of range");
            assert!(matches!(e, Error::Kernel { step: 1, code: 1, .. }));

            spec.kernels[1].code = FAIL42.to_vec();
            spec.kernels[1].name = "odd".into();
            let mut m = Model::from_bytes(&encode_bundle(&spec)).unwrap();
            let e = m.run(&[&1.0f32.to_le_bytes()]).unwrap_err();
            assert_eq!(e.to_string(), "step 1 (node \"gather\", kernel \"odd\"): kernel error 42");
        }

        #[test]
        fn run_into_and_run_with_arena() {
            let mut m = Model::from_bytes(&encode_bundle(&sample_spec())).unwrap();
            let (mut y, mut w) = ([0u8; 4], [0u8; 4]);
            m.run_into(&[&4.5f32.to_le_bytes()], &mut [&mut y, &mut w]).unwrap();
            assert_eq!((f32s(&y), f32s(&w)), (4.5, 2.5));

            // A caller arena (64-byte aligned inside a bigger buffer), reused
            // with garbage in it; the model's own arena is untouched.
            #[repr(align(64))]
            struct Aligned([u8; 192]);
            let mut buf = Aligned([0xAB; 192]);
            for x in [-3.0f32, 8.25] {
                let (mut y, mut w) = ([0u8; 4], [0u8; 4]);
                m.run_with_arena(&mut buf.0[..64], &[&x.to_le_bytes()], &mut [&mut y, &mut w]).unwrap();
                assert_eq!((f32s(&y), f32s(&w)), (x, 2.5));
                assert_eq!(f32s(&buf.0[16..20]), x, "outputs live in the caller's arena");
            }
            // Bigger arenas are fine; the same model runs on two threads at once.
            let m = &m;
            std::thread::scope(|s| {
                for t in 0..2 {
                    s.spawn(move || {
                        let mut arena = Aligned([0; 192]);
                        for i in 0..1000 {
                            let x = (t * 10_000 + i) as f32;
                            let (mut y, mut w) = ([0u8; 4], [0u8; 4]);
                            m.run_with_arena(&mut arena.0, &[&x.to_le_bytes()], &mut [&mut y, &mut w]).unwrap();
                            assert_eq!(f32s(&y), x);
                        }
                    });
                }
            });

            let (mut y, mut w) = ([0u8; 4], [0u8; 4]);
            let e = m.run_with_arena(&mut buf.0[..63], &[&1f32.to_le_bytes()], &mut [&mut y, &mut w]).unwrap_err();
            assert_eq!(e.to_string(), "arena of 63 bytes is too small: the model needs 64 bytes");
            let e = m.run_with_arena(&mut buf.0[1..65], &[&1f32.to_le_bytes()], &mut [&mut y, &mut w]).unwrap_err();
            assert!(matches!(e, Error::ArenaMisaligned { align: 64, .. }), "{e}");
            assert!(e.to_string().ends_with("is not 64-byte aligned"), "{e}");
            let e = m.run_with_arena(&mut buf.0[..64], &[&1f32.to_le_bytes()], &mut [&mut y]).unwrap_err();
            assert_eq!(e.to_string(), "expected 2 output buffers, got 1");
            let mut short = [0u8; 2];
            let e = m.run_with_arena(&mut buf.0[..64], &[&1f32.to_le_bytes()], &mut [&mut y, &mut short]).unwrap_err();
            assert_eq!(e.to_string(), "output 1 (\"w\", f32[]): expected a buffer of 4 bytes, got 2");
        }

        #[test]
        fn input_checks() {
            let mut m = Model::from_bytes(&encode_bundle(&sample_spec())).unwrap();
            assert_eq!(m.run(&[]).unwrap_err().to_string(), "expected 1 inputs, got 0");
            assert_eq!(m.run(&[&[0u8; 3]]).unwrap_err().to_string(), "input 0 (\"x\", f32[]): expected 4 bytes, got 3");
        }
    }
}
