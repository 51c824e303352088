//! [`Model`]: a loaded, validated, executable bundle.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use memmap2::{Mmap, MmapMut};

use crate::bundle::read::parse;
use crate::bundle::{Region, TensorSpec};
use crate::error::{Error, Result};
use crate::exec::{ExecCode, KernelFn, check_host_triple};

/// A loaded, validated, executable bundle.
///
/// Loading validates the whole bundle, refuses code for another CPU
/// architecture, copies the CODE section into fresh read+execute memory,
/// allocates the arena (zeroed, page aligned) and precomputes every step's
/// argument pointer array, so [`Model::run`] does no allocation besides the
/// returned output buffers.
///
/// The arena is not cleared between runs: kernels are expected to fully
/// write their outputs.
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
    weights_size: u64,
    code_size: u64,
    kernel_names: Vec<String>,
    kernel_fns: Vec<KernelFn>,
    /// Per step: kernel index, node name, range into `arg_ptrs`.
    steps: Vec<(usize, String, Range<usize>)>,
    /// All steps' argument pointers, back to back.
    arg_ptrs: Vec<*mut u8>,
    /// Start of the arena mapping (all arena accesses go through this pointer).
    arena_base: *mut u8,
    // The fields below own the memory the pointers above point into; they
    // are never accessed after loading, only kept alive.
    _arena: MmapMut,
    _code: ExecCode,
    /// The bundle bytes: the read-only file mapping, or an anonymous
    /// read-only copy. Weight pointers point into it.
    _bytes: Mmap,
}

// SAFETY: the raw pointers point into memory owned by the `Model` itself
// (`_arena`, `_code`, `_bytes`), which does not move when the `Model` moves and
// is not shared with anything else. The arena is only written through
// `&mut self` (`run`); `&self` methods only read plain metadata.
unsafe impl Send for Model {}
// SAFETY: see above; no `&self` method touches the arena or calls kernels.
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
    pub fn from_file(path: &Path) -> Result<Model> {
        Self::load_file(path).map_err(|e| e.in_file(path))
    }

    fn load_file(path: &Path) -> Result<Model> {
        let file =
            std::fs::File::open(path).map_err(|error| Error::Io { action: "open the bundle".to_string(), error })?;
        // SAFETY: the mapping is read-only and private to this process; the
        // documented contract is that the file is not modified while mapped.
        let map =
            unsafe { Mmap::map(&file) }.map_err(|error| Error::Io { action: "map the bundle".to_string(), error })?;
        Self::load(map)
    }

    /// Load a bundle from memory. The bytes are copied into an owned,
    /// page-aligned (hence 64-byte aligned) read-only buffer first.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let io = |error| Error::Io { action: format!("allocate {} bytes for the bundle", bytes.len()), error };
        let mut map = MmapMut::map_anon(bytes.len()).map_err(io)?;
        map.copy_from_slice(bytes);
        let map = map.make_read_only().map_err(io)?;
        Self::load(map)
    }

    fn load(bytes: Mmap) -> Result<Model> {
        let layout = parse(&bytes)?;
        check_host_triple(&layout.triple)?;

        let code = ExecCode::new(layout.code)?;
        // SAFETY: each kernel offset was validated to lie inside CODE (with a
        // nonzero size); that it is a valid entry point is the bundle's promise.
        let kernel_fns: Vec<KernelFn> = layout.kernels.iter().map(|k| unsafe { code.kernel(k.offset) }).collect();

        let arena_len = to_usize(layout.arena_size, "arena")?;
        let mut arena = MmapMut::map_anon(arena_len)
            .map_err(|error| Error::Io { action: format!("allocate an arena of {arena_len} bytes"), error })?;
        let arena_base = arena.as_mut_ptr();
        let weights_base = layout.weights.as_ptr().cast_mut();

        // Validation guarantees offset + size ≤ region length for every arg,
        // and that region lengths fit in memory, so these casts are lossless
        // and the pointers stay in (or one past) their region.
        let mut arg_ptrs = Vec::with_capacity(layout.steps.iter().map(|s| s.args.len()).sum());
        let mut steps = Vec::with_capacity(layout.steps.len());
        for s in &layout.steps {
            let start = arg_ptrs.len();
            for a in &s.args {
                let base = match a.region {
                    Region::Arena => arena_base,
                    Region::Weights => weights_base,
                };
                arg_ptrs.push(base.wrapping_add(a.offset as usize));
            }
            steps.push((s.kernel as usize, s.node.clone(), start..arg_ptrs.len()));
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
            weights_size: layout.weights.len() as u64,
            code_size: layout.code.len() as u64,
            kernel_names: layout.kernels.into_iter().map(|k| k.name).collect(),
            kernel_fns,
            steps,
            arg_ptrs,
            arena_base,
            target: layout.target,
            triple: layout.triple,
            inputs: layout.inputs,
            outputs: layout.outputs,
            _arena: arena,
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

    /// Size of the arena in bytes.
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

    /// Run the model once.
    ///
    /// `inputs` are the raw little-endian bytes of each input, in signature
    /// order; their count and byte lengths are checked before anything is
    /// written. They are copied into the arena, every step runs in order, and
    /// each output's bytes are returned in signature order. A kernel that
    /// returns a nonzero status stops the run with [`Error::Kernel`].
    pub fn run(&mut self, inputs: &[&[u8]]) -> Result<Vec<Vec<u8>>> {
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

        for (range, data) in self.input_ranges.iter().zip(inputs) {
            // SAFETY: `range` lies inside the arena (validated at load) and has
            // the length of `data` (checked above); `data` cannot alias the
            // arena, which is only reachable through `&mut self`.
            unsafe {
                std::ptr::copy_nonoverlapping(data.as_ptr(), self.arena_base.add(range.start), data.len());
            }
        }

        for (step, (kernel, node, args)) in self.steps.iter().enumerate() {
            let f = self.kernel_fns[*kernel];
            let args = &self.arg_ptrs[args.clone()];
            // SAFETY: the kernel is machine code for this architecture from a
            // validated bundle, called with its ABI; every argument pointer
            // addresses a validated range of the arena or the weights.
            let code = unsafe { f(args.as_ptr()) };
            if code != 0 {
                return Err(Error::Kernel {
                    step,
                    node: node.clone(),
                    kernel: self.kernel_names[*kernel].clone(),
                    code,
                });
            }
        }

        Ok(self
            .output_ranges
            .iter()
            .map(|r| {
                // SAFETY: `r` lies inside the arena (validated at load), and no
                // kernel is running.
                unsafe { std::slice::from_raw_parts(self.arena_base.add(r.start), r.len()) }.to_vec()
            })
            .collect())
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
        action: format!("allocate the {what} ({n} bytes)"),
        error: std::io::Error::new(std::io::ErrorKind::OutOfMemory, "size exceeds the address space"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::encode_bundle;
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
    fn accessors() {
        let spec = sample_spec();
        let m = Model::from_bytes(&encode_bundle(&spec)).unwrap();
        assert_eq!(m.target(), "test-host");
        assert_eq!(m.triple(), spec.triple);
        assert_eq!(m.inputs(), &spec.inputs[..]);
        assert_eq!(m.outputs(), &spec.outputs[..]);
        assert_eq!(m.arena_size(), 64);
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
        use crate::bundle::{BufRef, Region, Step};
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
        fn input_checks() {
            let mut m = Model::from_bytes(&encode_bundle(&sample_spec())).unwrap();
            assert_eq!(m.run(&[]).unwrap_err().to_string(), "expected 1 inputs, got 0");
            assert_eq!(m.run(&[&[0u8; 3]]).unwrap_err().to_string(), "input 0 (\"x\", f32[]): expected 4 bytes, got 3");
        }
    }
}
