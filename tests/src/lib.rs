//! Shared helpers for nanoc's integration tests: fixture loading,
//! tolerance checks, and the three execution paths (interpreter, JIT,
//! bundle through the runtime).

use nanoc::driver;
use nanoc::onnx::ImportOptions;
use nanoc_ir::{Graph, Tensor};
use std::path::{Path, PathBuf};

/// Relative tolerance for f32 comparisons (DESIGN.md: 1e-4).
pub const RTOL: f64 = 1e-4;
/// Absolute floor for f32 comparisons of values near zero.
pub const ATOL: f64 = 1e-5;

/// The repository's `tests/fixtures` folder.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A fixture: model path, inputs and onnxruntime's outputs, by name.
pub struct Fixture {
    /// Fixture name (directory name).
    pub name: String,
    /// Path of `model.onnx`.
    pub model: PathBuf,
    /// Inputs (name, tensor).
    pub inputs: Vec<(String, Tensor)>,
    /// Expected outputs recorded from onnxruntime (name, tensor).
    pub outputs: Vec<(String, Tensor)>,
}

fn read_dir_npys(dir: &Path) -> Vec<(String, Tensor)> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "npy"))
        .map(|p| {
            let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            let t = nanoc::npy::read_npy(&p).unwrap_or_else(|e| panic!("{e:#}"));
            (name, t)
        })
        .collect()
}

/// Loads `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> Fixture {
    let dir = fixtures_dir().join(rel);
    Fixture {
        name: rel.to_string(),
        model: dir.join("model.onnx"),
        inputs: read_dir_npys(&dir.join("inputs")),
        outputs: read_dir_npys(&dir.join("outputs")),
    }
}

impl Fixture {
    /// Imports the model with symbolic dims bound from the inputs' shapes.
    pub fn import(&self) -> Result<Graph, String> {
        let opts = ImportOptions {
            input_shapes: self.inputs.iter().map(|(n, t)| (n.clone(), t.shape().0.clone())).collect(),
            ..Default::default()
        };
        driver::load_graph(&self.model, &opts).map_err(|e| format!("{e:#}"))
    }

    /// Imports the model and runs the pass pipeline for the host CPU
    /// (verification and the e-graph optimiser); returns the optimised
    /// graph and the optimiser's report.
    pub fn import_optimized(&self) -> Result<(Graph, nanoc::egraph::OptReport), String> {
        let g = self.import()?;
        let t = cpu_target();
        nanoc_ir::verify::verify(&g).map_err(|e| e.to_string())?;
        nanoc::egraph::optimize(&g, &t, &Default::default()).map_err(|e| e.to_string())
    }

    /// Inputs in graph-input order.
    pub fn ordered_inputs(&self, g: &Graph) -> Vec<Tensor> {
        g.inputs()
            .iter()
            .map(|&id| {
                let name = &g.node(id).name;
                self.inputs
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, t)| t.clone())
                    .unwrap_or_else(|| panic!("no input {name}"))
            })
            .collect()
    }
}

/// The host CPU's target descriptor.
pub fn cpu_target() -> nanoc_targets::Target {
    driver::resolve_target("cpu").unwrap_or_else(|e| panic!("{e:#}"))
}

/// Every fixture: the models, then `ops/<case>` for each line of
/// `ops/CASES.txt`.
pub fn all_fixtures() -> Vec<String> {
    let mut v: Vec<String> = ["gpt2", "mlp", "cnn"].iter().map(|s| s.to_string()).collect();
    let list = std::fs::read_to_string(fixtures_dir().join("ops/CASES.txt")).unwrap_or_default();
    v.extend(list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(|c| format!("ops/{c}")));
    v
}

/// Checks `got` against `want` elementwise: same type, and for floats
/// `|g - w| <= rtol * |w| + atol` (NaN matches NaN); integers and bools
/// exactly. Returns a message naming the worst element on failure.
pub fn compare(what: &str, got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if got.shape() != want.shape() {
        return Err(format!("{what}: shape {} vs expected {}", got.ty(), want.ty()));
    }
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    let exact = !want.dtype().is_float();
    if got.dtype() != want.dtype() && !(got.dtype().is_float() && want.dtype().is_float()) {
        return Err(format!("{what}: dtype {} vs expected {}", got.dtype(), want.dtype()));
    }
    let mut worst: Option<(usize, f64)> = None;
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let ok = if a.is_nan() || b.is_nan() {
            a.is_nan() && b.is_nan()
        } else if exact || a.is_infinite() || b.is_infinite() {
            a == b
        } else {
            (a - b).abs() <= rtol * b.abs() + atol
        };
        if !ok {
            let excess = (a - b).abs();
            if worst.is_none_or(|(_, e)| excess > e || excess.is_nan()) {
                worst = Some((i, excess));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, _)) => Err(format!("{what}: element {i}: got {} expected {} (rtol {rtol}, atol {atol})", g[i], w[i])),
    }
}

/// Compares lists of named outputs.
pub fn compare_all(
    what: &str,
    got: &[(String, Tensor)],
    want: &[(String, Tensor)],
    rtol: f64,
    atol: f64,
) -> Result<(), String> {
    for (name, w) in want {
        let g = got
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| format!("{what}: missing output {name}"))?;
        compare(&format!("{what} `{name}`"), g, w, rtol, atol)?;
    }
    Ok(())
}

/// Runs `g` with the reference interpreter, returning named outputs.
pub fn run_interp(g: &Graph, inputs: &[Tensor]) -> Result<Vec<(String, Tensor)>, String> {
    let outs = nanoc_ir::interp::run(g, inputs).map_err(|e| e.to_string())?;
    Ok(g.outputs().iter().map(|(n, _)| n.clone()).zip(outs).collect())
}

/// Runs `g` through the Cranelift JIT for the host CPU.
pub fn run_jit(g: &Graph, inputs: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>, String> {
    let t = driver::resolve_target("cpu").map_err(|e| format!("{e:#}"))?;
    driver::run_jit(g, &t, inputs).map_err(|e| format!("{e:#}"))
}

/// Compiles `g` to a bundle file in a temp dir and runs it with the runtime.
pub fn run_bundle(g: &Graph, inputs: &[(String, Tensor)], tag: &str) -> Result<Vec<(String, Tensor)>, String> {
    let t = driver::resolve_target("cpu").map_err(|e| format!("{e:#}"))?;
    let prog = nanoc_backends::cpu::compile(g, &t, false).map_err(|e| e.to_string())?;
    let bytes = driver::bundle_bytes(&prog).map_err(|e| format!("{e:#}"))?;
    let path = temp_path(&format!("{tag}.nanob"));
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    let r = driver::run_bundle(&path, inputs).map_err(|e| format!("{e:#}"));
    let _ = std::fs::remove_file(&path);
    r
}

/// A unique path in the system temp dir.
pub fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nanoc-tests-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir.join(name.replace('/', "_"))
}
pub mod fuzz;
