//! The compiler driver: load a model (any frontend), run the pass
//! pipeline, compile for a target, and package bundles.

pub use crate::egraph::OptOptions;
use crate::egraph::{self, OptReport};
use crate::onnx::{self, ImportOptions};
use anyhow::{Context, Result, bail};
use nanoc_backends::cpu::{self, CpuProgram, plan};
use nanoc_ir::{DType, Graph, Tensor, text, verify, weights::Weights};
use nanoc_runtime::{BufRef, BundleSpec, ElemType, KernelCode, Region, Step, TensorSpec};
use nanoc_targets::Target;
use std::path::Path;

/// True if `path` looks like a `.nanob` bundle (by extension or magic).
pub fn is_bundle(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e == "nanob") {
        return true;
    }
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .map(|_| magic == nanoc_runtime::bundle::MAGIC)
        .unwrap_or(false)
}

/// Imports a model file into IR: `.onnx`, or `.ngraph` text (with its
/// weights in the side file `<stem>.safetensors` when present). Half
/// precision models come back computing in f32 (`passes::precision`).
pub fn load_graph(path: &Path, opts: &ImportOptions) -> Result<Graph> {
    let p = path.display().to_string();
    let g = match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => onnx::import_onnx(path, opts)?,
        Some("ngraph") => {
            let src = std::fs::read_to_string(path).with_context(|| format!("{p}: cannot read"))?;
            let side = path.with_extension("safetensors");
            let w = if side.exists() { Some(Weights::load_safetensors(&side)?) } else { None };
            text::parse(&src, &p, w.as_ref())?
        }
        _ => bail!("{p}: unknown model format (expected .onnx, .ngraph or a .nanob bundle)"),
    };
    Ok(crate::passes::precision::promote_half(g)?)
}

/// The optimisation pipeline: verify the graph, run the e-graph optimiser
/// for `target` (unless `opts.no_opt`), verify the result.
pub fn optimize(g: Graph, target: &Target, opts: &OptOptions) -> Result<Graph> {
    Ok(optimize_with_report(g, target, opts)?.0)
}

/// [`optimize`], also returning the optimiser's report (`None` when it was
/// skipped), which `--emit egraph` prints.
pub fn optimize_with_report(g: Graph, target: &Target, opts: &OptOptions) -> Result<(Graph, Option<OptReport>)> {
    verify::verify(&g)?;
    if opts.no_opt {
        return Ok((g, None));
    }
    let (out, report) = egraph::optimize(&g, target, opts)?;
    verify::verify(&out)?;
    Ok((out, Some(report)))
}

/// Resolves `--target`: `cpu` means the host CPU descriptor
/// (`cpu-x86_64` or `cpu-aarch64`); anything else is a descriptor name or path.
pub fn resolve_target(name: &str) -> Result<Target> {
    let name = if name == "cpu" { format!("cpu-{}", std::env::consts::ARCH) } else { name.to_string() };
    Ok(Target::find(&name)?)
}

/// Checks that code can be generated for `t`: only CPU targets have a
/// backend; an NPU target gets an error saying so (the NPU backend is
/// issue #6), while `--emit ir|egraph` work for every target.
pub fn require_cpu_backend(t: &Target) -> Result<()> {
    if t.kind == nanoc_targets::TargetKind::Cpu {
        return Ok(());
    }
    bail!(
        "target `{}` is an NPU and the NPU backend does not exist yet (issue #6): only --emit ir and --emit egraph \
         work for it (they show the graph extracted with its cost model); compile for its host `{}` to run the model",
        t.name,
        t.npu().map_or("cpu", |n| n.host.as_str())
    )
}

/// The runtime's element type for an IR dtype.
pub fn elem_type(dt: DType) -> ElemType {
    match dt {
        DType::F32 => ElemType::F32,
        DType::F16 => ElemType::F16,
        DType::BF16 => ElemType::BF16,
        DType::I8 => ElemType::I8,
        DType::U8 => ElemType::U8,
        DType::I32 => ElemType::I32,
        DType::I64 => ElemType::I64,
        DType::Bool => ElemType::Bool,
    }
}

/// The IR dtype for a runtime element type.
pub fn dtype_of(e: ElemType) -> DType {
    match e {
        ElemType::F32 => DType::F32,
        ElemType::F16 => DType::F16,
        ElemType::BF16 => DType::BF16,
        ElemType::I8 => DType::I8,
        ElemType::U8 => DType::U8,
        ElemType::I32 => DType::I32,
        ElemType::I64 => DType::I64,
        ElemType::Bool => DType::Bool,
    }
}

/// Packages a compiled CPU program as `.nanob` bytes.
pub fn bundle_bytes(prog: &CpuProgram) -> Result<Vec<u8>> {
    let code = prog.machine_code()?;
    let buf = |s: &plan::Slot| BufRef {
        region: if s.region == plan::Region::Arena { Region::Arena } else { Region::Weights },
        offset: s.offset,
        size: s.size,
    };
    let io = |s: &cpu::IoSlot| TensorSpec {
        name: s.name.clone(),
        elem: elem_type(s.ty.dtype),
        shape: s.ty.shape.0.iter().map(|&d| d as u64).collect(),
        offset: s.slot.offset,
    };
    let spec = BundleSpec {
        target: prog.target.clone(),
        triple: prog.triple.clone(),
        arena_size: prog.arena_size,
        inputs: prog.inputs.iter().map(io).collect(),
        outputs: prog.outputs.iter().map(io).collect(),
        kernels: prog.kernels.iter().zip(code).map(|(k, code)| KernelCode { name: k.name.clone(), code }).collect(),
        steps: prog
            .steps
            .iter()
            .map(|s| Step { kernel: s.kernel as u32, node: s.node.clone(), args: s.args.iter().map(buf).collect() })
            .collect(),
        weights: prog.weights.clone(),
    };
    Ok(nanoc_runtime::encode_bundle(&spec))
}

/// Compiles a CPU program to a relocatable object file and its C header
/// (`--emit obj`): returns (object bytes, header text). Every global symbol
/// starts with `prefix` (a C identifier; `cpu::object::prefix_from_stem`
/// gives the default for an output file name). The program must be
/// compiled for the target baseline (`cpu::compile(g, target, false)`).
/// See `docs/object-files.md`.
pub fn object_files(prog: &CpuProgram, prefix: &str) -> Result<(Vec<u8>, String)> {
    let files = cpu::object::emit_object(prog, prefix)?;
    Ok((files.object, files.header))
}

/// Output files and symbol prefix of `--emit obj`: `-o PATH` gives
/// `PATH.o` and `PATH.h` (a trailing `.o` or `.h` on `PATH` is dropped
/// first, so `-o model` and `-o model.o` agree); without `-o`, the model's
/// path without its extension. The prefix is `prefix` if given (it must be a
/// valid one), else the output file name made into a C identifier
/// (`cpu::object::prefix_from_stem`). Returns (object path, header path, prefix).
pub fn object_outputs(
    model: &Path,
    output: Option<&Path>,
    prefix: Option<&str>,
) -> Result<(std::path::PathBuf, std::path::PathBuf, String)> {
    let mut base = output.map_or_else(|| model.with_extension(""), Path::to_path_buf);
    if base.extension().is_some_and(|e| e == "o" || e == "h") {
        base.set_extension("");
    }
    let Some(stem) = base.file_name().map(|s| s.to_string_lossy().into_owned()) else {
        bail!("{}: not a file name for the object file", base.display());
    };
    let prefix = match prefix {
        Some(p) if !cpu::object::is_valid_prefix(p) => {
            bail!("--prefix `{p}`: must be a C identifier starting with a letter (letters, digits, `_`)")
        }
        Some(p) => p.to_string(),
        None => cpu::object::prefix_from_stem(&stem),
    };
    let with = |ext: &str| {
        let mut s = base.clone().into_os_string();
        s.push(ext);
        std::path::PathBuf::from(s)
    };
    Ok((with(".o"), with(".h"), prefix))
}

/// Runs a bundle through the runtime: `inputs` by name; returns the
/// outputs as (name, tensor).
pub fn run_bundle(path: &Path, inputs: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
    let mut model = nanoc_runtime::Model::from_file(path)?;
    let specs = model.inputs().to_vec();
    let mut ordered = Vec::new();
    for spec in &specs {
        let t = find_input(inputs, &spec.name, specs.len())?;
        let want: Vec<usize> = spec.shape.iter().map(|&d| d as usize).collect();
        if t.dtype() != dtype_of(spec.elem) || t.shape().0 != want {
            bail!(
                "input `{}`: the bundle expects {}{:?}, got {} (recompile for other shapes)",
                spec.name,
                spec.elem.name(),
                want,
                t.ty()
            );
        }
        ordered.push(t.bytes());
    }
    let outs = model.run(&ordered)?;
    model
        .outputs()
        .iter()
        .zip(outs)
        .map(|(s, bytes)| {
            let ty =
                nanoc_ir::TensorType::new(dtype_of(s.elem), s.shape.iter().map(|&d| d as usize).collect::<Vec<_>>());
            Ok((s.name.clone(), Tensor::from_bytes(ty, nanoc_ir::Bytes::from_vec(bytes))?))
        })
        .collect()
}

/// Compiles a graph with the JIT and runs it once.
pub fn run_jit(g: &Graph, target: &Target, inputs: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
    let prog = cpu::compile(g, target, true)?;
    let mut jit = cpu::jit::JitModel::new(prog)?;
    let mut ordered = Vec::new();
    for &id in g.inputs() {
        let n = g.node(id);
        let t = find_input(inputs, &n.name, g.inputs().len())?;
        if t.ty() != &n.ty {
            bail!("input `{}`: the model expects {}, got {}", n.name, n.ty, t.ty());
        }
        ordered.push(t.bytes());
    }
    let outs = jit.run(&ordered)?;
    g.outputs()
        .iter()
        .zip(outs)
        .map(|((name, id), bytes)| {
            Ok((name.clone(), Tensor::from_bytes(g.node(*id).ty.clone(), nanoc_ir::Bytes::from_vec(bytes))?))
        })
        .collect()
}

/// Finds input `name`; a single unnamed input (`""`) matches a single-input model.
fn find_input<'a>(inputs: &'a [(String, Tensor)], name: &str, count: usize) -> Result<&'a Tensor> {
    if let Some((_, t)) = inputs.iter().find(|(n, _)| n == name) {
        return Ok(t);
    }
    if count == 1 && inputs.len() == 1 && inputs[0].0.is_empty() {
        return Ok(&inputs[0].1);
    }
    bail!("missing input `{name}` (pass --input {name}=FILE.npy)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_output_names() {
        let m = Path::new("models/mlp.onnx");
        let names = |o: Option<&str>, p: Option<&str>| {
            let (a, b, c) = object_outputs(m, o.map(Path::new), p).unwrap();
            (a.display().to_string(), b.display().to_string(), c)
        };
        let s = |x: &str| x.to_string();
        assert_eq!(names(None, None), (s("models/mlp.o"), s("models/mlp.h"), s("mlp")));
        assert_eq!(names(Some("out/model"), None), (s("out/model.o"), s("out/model.h"), s("model")));
        assert_eq!(names(Some("model.o"), Some("net")), (s("model.o"), s("model.h"), s("net")));
        assert_eq!(names(Some("my-net.v2"), None), (s("my-net.v2.o"), s("my-net.v2.h"), s("my_net_v2")));
        assert!(object_outputs(m, None, Some("2bad")).is_err());
    }
}
