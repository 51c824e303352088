//! The `nanoc` command-line interface.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use nanoc::driver;
use nanoc::egraph::OptReport;
use nanoc::onnx::ImportOptions;
use nanoc_ir::{Graph, Op, Tensor, text};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// nanoc: an ahead-of-time compiler for small neural networks.
///
/// Compiles ONNX models and `.ngraph` text graphs to machine code for a
/// target described in `targets/*.toml`, packaged as a `.nanob` bundle that
/// the tiny runtime loads and runs.
#[derive(Parser)]
#[command(name = "nanoc", version, about, long_about = None)]
struct Cli {
    /// Print no progress messages.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compile a model (.onnx or .ngraph) to a bundle, or dump a stage.
    ///
    /// Exit status 2 means the model uses ops nanoc does not support (all are listed).
    Compile {
        /// The model file (.onnx or .ngraph).
        model: PathBuf,
        /// Target descriptor name (see `nanoc targets`) or path to a .toml; `cpu` is the host CPU.
        #[arg(long, short, default_value = "cpu")]
        target: String,
        /// Output file (default: the model's name with .nanob; dumps go to stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// What to produce.
        #[arg(long, value_enum, default_value_t = Emit::Bundle)]
        emit: Emit,
        /// Bind a symbolic dimension, e.g. `--dim seq=16` (repeatable).
        #[arg(long = "dim", value_name = "NAME=N")]
        dims: Vec<String>,
        /// Symbol prefix for --emit obj (default: the output file name as a C identifier).
        #[arg(long, value_name = "NAME")]
        prefix: Option<String>,
        /// Magnitude-prune constant matmul weights: `2:4` (two of every four
        /// along K) or a ratio in (0, 1) zeroed per weight.
        #[arg(long, value_name = "2:4|RATIO")]
        prune: Option<String>,
        /// With --prune: an input as NAME=FILE.npy (repeatable) to report the
        /// accuracy change on (the interpreter runs the model before and after).
        #[arg(long = "input", short, value_name = "NAME=FILE.npy")]
        inputs: Vec<String>,
        #[command(flatten)]
        opt: OptArgs,
    },
    /// Run a model (JIT-compiled) or a bundle (through the runtime) on .npy inputs.
    Run {
        /// A model (.onnx, .ngraph) or a compiled .nanob bundle.
        model: PathBuf,
        /// An input as NAME=FILE.npy (repeatable); a single-input model also takes FILE.npy.
        #[arg(long = "input", short, value_name = "NAME=FILE.npy")]
        inputs: Vec<String>,
        /// Write each output to DIR/<name>.npy.
        #[arg(long)]
        output_dir: Option<PathBuf>,
        /// Target for JIT compilation of a model.
        #[arg(long, short, default_value = "cpu")]
        target: String,
        /// Bind a symbolic dimension (inputs' shapes bind the rest).
        #[arg(long = "dim", value_name = "NAME=N")]
        dims: Vec<String>,
        #[command(flatten)]
        opt: OptArgs,
    },
    /// Summarise a model or a bundle: ops, parameters, bytes, I/O signature.
    Inspect {
        /// A model (.onnx, .ngraph) or a .nanob bundle.
        model: PathBuf,
        /// Bind a symbolic dimension of a model.
        #[arg(long = "dim", value_name = "NAME=N")]
        dims: Vec<String>,
        /// For an ONNX model: list its op types with node counts and whether
        /// each target supports them, without importing it.
        #[arg(long)]
        support: bool,
        /// Optimise the model for --target and list what fused where: every
        /// new node of the optimised graph, its op, and the original nodes it replaced.
        #[arg(long, conflicts_with = "support")]
        fusions: bool,
        /// Target for --fusions (descriptor name or path; `cpu` is the host CPU).
        #[arg(long, short, default_value = "cpu")]
        target: String,
        #[command(flatten)]
        opt: OptArgs,
    },
    /// List the target descriptors in targets/.
    Targets,
}

/// Optimiser switches.
#[derive(clap::Args)]
struct OptArgs {
    /// Optimisation level: 0 skips the e-graph optimiser, 1 (default) runs it.
    #[arg(short = 'O', value_name = "LEVEL", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    level: u8,
    /// Skip the e-graph optimiser (same as -O0).
    #[arg(long)]
    no_opt: bool,
    /// Extraction: `greedy` (linear, default) or `dag` (counts shared values once; quadratic worst case).
    #[arg(long, value_enum, default_value_t = ExtractArg::Greedy)]
    extract: ExtractArg,
}

/// `--extract` values.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExtractArg {
    /// Cheapest e-node per class, counting private operands.
    Greedy,
    /// Greedy DAG: cheapest e-node per class counting every needed class once.
    Dag,
}

impl OptArgs {
    fn options(&self) -> driver::OptOptions {
        let extractor = match self.extract {
            ExtractArg::Greedy => nanoc::egraph::cost::Extractor::Greedy,
            ExtractArg::Dag => nanoc::egraph::cost::Extractor::Dag,
        };
        driver::OptOptions { no_opt: self.no_opt || self.level == 0, extractor, ..Default::default() }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Emit {
    /// A .nanob bundle for the runtime.
    Bundle,
    /// The optimised IR as .ngraph text (weights to <output>.safetensors when -o is given).
    Ir,
    /// The e-graph optimiser's per-stage report, then the optimised IR.
    Egraph,
    /// The Cranelift IR of every kernel.
    Clif,
    /// A relocatable object file and C header (<output>.o, <output>.h) that link without the runtime.
    Obj,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let unsupported = e.chain().any(|c| {
                c.downcast_ref::<nanoc::onnx::OnnxError>().is_some_and(|o| o.is_unsupported())
                    || matches!(
                        c.downcast_ref::<nanoc_backends::BackendError>(),
                        Some(nanoc_backends::BackendError::Unsupported { .. })
                    )
            });
            ExitCode::from(if unsupported { 2 } else { 1 })
        }
    }
}

/// Progress messages on stderr unless `--quiet`.
struct Progress {
    quiet: bool,
    start: Instant,
}

impl Progress {
    fn say(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("[{:>6.2}s] {msg}", self.start.elapsed().as_secs_f64());
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let pr = Progress { quiet: cli.quiet, start: Instant::now() };
    match cli.cmd {
        Cmd::Compile { model, target, output, emit, dims, prefix, prune, inputs, opt } => {
            if prefix.is_some() && emit != Emit::Obj {
                bail!("--prefix only applies to --emit obj");
            }
            if prune.is_none() && !inputs.is_empty() {
                bail!("--input only applies to --prune (it measures the accuracy change)");
            }
            let t = driver::resolve_target(&target)?;
            if matches!(emit, Emit::Bundle | Emit::Clif | Emit::Obj) {
                driver::require_cpu_backend(&t)?;
            }
            let opts = ImportOptions { dims: parse_dims(&dims)?, ..Default::default() };
            let mut g = import(&model, &opts, &pr)?;
            if let Some(how) = &prune {
                let how: nanoc::passes::prune::Prune = how.parse().map_err(|e| anyhow!("--prune {e}"))?;
                let before = g.clone();
                let r = nanoc::passes::prune::prune(&mut g, how);
                pr.say(format!(
                    "pruned {} weights ({} of {} elements now zero), left {} dense",
                    r.weights, r.zeros, r.elements, r.skipped
                ));
                if !inputs.is_empty() {
                    prune_delta(&before, &g, &read_inputs(&inputs)?)?;
                }
            }
            let (g, report) = optimize(g, &t, &opt, &pr)?;
            match emit {
                Emit::Ir | Emit::Egraph => {
                    let mut txt = text::print(&g);
                    if emit == Emit::Egraph {
                        let head =
                            report.map_or_else(|| "e-graph optimiser skipped (-O0)\n".to_string(), |r| r.to_string());
                        txt = format!("{head}\n{txt}");
                    }
                    match output {
                        Some(o) => {
                            std::fs::write(&o, txt).with_context(|| format!("{}: cannot write", o.display()))?;
                            let w = text::external_weights(&g);
                            if !w.is_empty() {
                                w.save_safetensors(&o.with_extension("safetensors"))?;
                            }
                            pr.say(format!("wrote {}", o.display()));
                        }
                        None => print!("{txt}"),
                    }
                }
                Emit::Obj => {
                    let prog = nanoc_backends::cpu::compile(&g, &t, false)?;
                    let (obj_path, h_path, prefix) =
                        driver::object_outputs(&model, output.as_deref(), prefix.as_deref())?;
                    let (obj, header) = driver::object_files(&prog, &prefix)?;
                    std::fs::write(&obj_path, &obj).with_context(|| format!("{}: cannot write", obj_path.display()))?;
                    std::fs::write(&h_path, header).with_context(|| format!("{}: cannot write", h_path.display()))?;
                    pr.say(format!(
                        "wrote {} and {} (prefix `{prefix}`, {} kernels, scratch {} bytes, weights {} bytes)",
                        obj_path.display(),
                        h_path.display(),
                        prog.kernels.len(),
                        prog.arena_size,
                        prog.weights.len()
                    ));
                }
                Emit::Clif | Emit::Bundle => {
                    let prog = nanoc_backends::cpu::compile(&g, &t, false)?;
                    pr.say(format!("lowered {} kernels for {}", prog.kernels.len(), t.name));
                    if emit == Emit::Clif {
                        let txt = prog.clif();
                        match output {
                            Some(o) => {
                                std::fs::write(&o, txt).with_context(|| format!("{}: cannot write", o.display()))?
                            }
                            None => print!("{txt}"),
                        }
                    } else {
                        let bytes = driver::bundle_bytes(&prog)?;
                        let out = output.unwrap_or_else(|| model.with_extension("nanob"));
                        std::fs::write(&out, &bytes).with_context(|| format!("{}: cannot write", out.display()))?;
                        pr.say(format!(
                            "wrote {} ({} bytes: {} kernels, arena {} bytes, weights {} bytes)",
                            out.display(),
                            bytes.len(),
                            prog.kernels.len(),
                            prog.arena_size,
                            prog.weights.len()
                        ));
                    }
                }
            }
        }
        Cmd::Run { model, inputs, output_dir, target, dims, opt } => {
            let inputs = read_inputs(&inputs)?;
            let outs = if driver::is_bundle(&model) {
                driver::run_bundle(&model, &inputs)?
            } else {
                let t = driver::resolve_target(&target)?;
                driver::require_cpu_backend(&t)?;
                let mut opts = ImportOptions { dims: parse_dims(&dims)?, ..Default::default() };
                opts.input_shapes = inputs.iter().map(|(n, t)| (n.clone(), t.shape().0.clone())).collect();
                let g = import(&model, &opts, &pr)?;
                let (g, _) = optimize(g, &t, &opt, &pr)?;
                let outs = driver::run_jit(&g, &t, &inputs)?;
                pr.say("ran with the JIT");
                outs
            };
            for (name, t) in &outs {
                println!("{}", summarize(name, t));
                if let Some(dir) = &output_dir {
                    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
                    nanoc::npy::write_npy(&dir.join(format!("{name}.npy")), t)?;
                }
            }
        }
        Cmd::Inspect { model, dims, support, fusions, target, opt } => {
            if fusions {
                let t = driver::resolve_target(&target)?;
                let opts = ImportOptions { dims: parse_dims(&dims)?, ..Default::default() };
                let g = import(&model, &opts, &pr)?;
                inspect_fusions(g, &t, &opt, &pr)?;
            } else if support {
                inspect_support(&model)?;
            } else if driver::is_bundle(&model) {
                inspect_bundle(&model)?;
            } else {
                let opts = ImportOptions { dims: parse_dims(&dims)?, ..Default::default() };
                let g = import(&model, &opts, &pr)?;
                inspect_graph(&g);
            }
        }
        Cmd::Targets => {
            for t in nanoc_targets::list()? {
                let detail = match (t.cpu(), t.npu()) {
                    (Some(c), _) => c.arch.clone(),
                    (_, Some(n)) => format!("{} MAC/cycle", n.int8_mode().map_or(0, |m| m.macs_per_cycle)),
                    _ => "-".into(),
                };
                println!("{:<16} {:<5} {:<14} {}", t.name, t.kind.name(), detail, t.description);
            }
        }
    }
    Ok(())
}

fn import(model: &Path, opts: &ImportOptions, pr: &Progress) -> Result<Graph> {
    pr.say(format!("importing {}", model.display()));
    let g = driver::load_graph(model, opts)?;
    nanoc_ir::verify::verify(&g)?;
    pr.say(format!("imported graph `{}`: {} nodes", g.name, g.node_count()));
    Ok(g)
}

/// Runs the pass pipeline for `target`, reporting what the optimiser did.
fn optimize(g: Graph, t: &nanoc_targets::Target, opt: &OptArgs, pr: &Progress) -> Result<(Graph, Option<OptReport>)> {
    let mut opts = opt.options();
    if !pr.quiet {
        let start = pr.start;
        opts.progress = nanoc::egraph::Progress::to(move |line| {
            eprintln!("[{:>6.2}s] {line}", start.elapsed().as_secs_f64());
        });
    }
    let (g, report) = driver::optimize_with_report(g, t, &opts)?;
    if let Some(r) = &report {
        let stops: Vec<String> =
            r.stages.iter().map(|s| format!("{} {}", s.name, nanoc::egraph::stages::stop_text(&s.stop))).collect();
        pr.say(format!(
            "optimised for {}: {} -> {} kernels ({}; {:.0} ms)",
            t.name,
            r.before.kernels,
            r.after.kernels,
            stops.join(", "),
            r.times.2.as_secs_f64() * 1e3
        ));
    }
    Ok((g, report))
}

fn parse_dims(dims: &[String]) -> Result<BTreeMap<String, usize>> {
    dims.iter()
        .map(|d| {
            let (k, v) = d.split_once('=').with_context(|| format!("--dim `{d}`: expected NAME=N"))?;
            let n: usize = v.parse().with_context(|| format!("--dim `{d}`: `{v}` is not a non-negative integer"))?;
            Ok((k.to_string(), n))
        })
        .collect()
}

fn read_inputs(args: &[String]) -> Result<Vec<(String, Tensor)>> {
    args.iter()
        .map(|a| {
            let (name, file) = match a.split_once('=') {
                Some((n, f)) => (n.to_string(), f),
                None => (String::new(), a.as_str()),
            };
            Ok((name, nanoc::npy::read_npy(Path::new(file))?))
        })
        .collect()
}

/// Runs `before` and `after` (pruned) with the reference interpreter on
/// `inputs` and prints each output's change on stderr.
fn prune_delta(before: &Graph, after: &Graph, inputs: &[(String, Tensor)]) -> Result<()> {
    let ordered = before
        .inputs()
        .iter()
        .map(|&id| {
            let name = &before.node(id).name;
            let single = before.inputs().len() == 1 && inputs.len() == 1 && inputs[0].0.is_empty();
            inputs
                .iter()
                .find(|(n, _)| n == name || single)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| anyhow!("--input: no value for model input `{name}`"))
        })
        .collect::<Result<Vec<_>>>()?;
    let want = nanoc_ir::interp::run(before, &ordered)?;
    let got = nanoc_ir::interp::run(after, &ordered)?;
    for ((name, _), (w, g)) in before.outputs().iter().zip(want.iter().zip(&got)) {
        let (w, g) = (w.to_f64_vec(), g.to_f64_vec());
        let max = w.iter().zip(&g).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        let diff = w.iter().zip(&g).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
        let norm = w.iter().map(|a| a * a).sum::<f64>().sqrt();
        eprintln!(
            "prune accuracy: output `{name}`: max |change| {max:.4e}, relative L2 change {:.4e}",
            diff / norm.max(f64::MIN_POSITIVE)
        );
    }
    Ok(())
}

/// One line per output: name, type, and a few statistics.
fn summarize(name: &str, t: &Tensor) -> String {
    let v = t.to_f64_vec();
    let head: Vec<String> = v.iter().take(6).map(|x| format!("{x:.6}")).collect();
    if v.is_empty() {
        return format!("{name}: {} (empty)", t.ty());
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    format!(
        "{name}: {} min {min:.6} max {max:.6} mean {mean:.6} first [{}{}]",
        t.ty(),
        head.join(", "),
        if v.len() > head.len() { ", ..." } else { "" }
    )
}

fn inspect_graph(g: &Graph) {
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    let mut params = 0usize;
    for id in g.node_ids() {
        let n = g.node(id);
        match &n.op {
            Op::Const(t) => params += t.shape().numel(),
            Op::Input => {}
            op => *ops.entry(op.name()).or_default() += 1,
        }
    }
    println!("graph `{}`", g.name);
    println!("  nodes: {} ({} ops)", g.node_count(), ops.values().sum::<usize>());
    println!("  parameters: {params} ({} bytes of constants)", g.const_bytes());
    for &id in g.inputs() {
        println!("  input  {}: {}", g.node(id).name, g.node(id).ty);
    }
    for (name, id) in g.outputs() {
        println!("  output {name}: {}", g.node(*id).ty);
    }
    println!("  ops:");
    for (op, n) in ops {
        println!("    {op:<14} {n}");
    }
}

/// `inspect --fusions`: optimises `g` for `t` and lists every new node of
/// the result with the original nodes it replaced, then a summary per op.
/// On an NPU target, new nodes that run on the host CPU are marked.
fn inspect_fusions(g: Graph, t: &nanoc_targets::Target, opt: &OptArgs, pr: &Progress) -> Result<()> {
    let (out, report) = optimize(g, t, opt, pr)?;
    let Some(r) = report else { bail!("the e-graph optimiser did not run") };
    let model = nanoc::egraph::cost::CostModel::for_target(t).map_err(anyhow::Error::msg)?;
    let host_nodes: std::collections::HashSet<&str> = nanoc::egraph::host_nodes(&model, &out)
        .unwrap_or_default()
        .iter()
        .map(|&id| out.node(id).name.as_str())
        .collect();
    println!("fusions for target {}: {} -> {} kernels", t.name, r.before.kernels, r.after.kernels);
    let mut summary: BTreeMap<&str, (usize, BTreeMap<&str, usize>)> = BTreeMap::new();
    let mut helpers: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &r.new_nodes {
        if n.replaced.is_empty() {
            *helpers.entry(n.op).or_default() += 1;
            continue;
        }
        let list: Vec<String> = n.replaced.iter().map(|(name, op)| format!("{name} ({op})")).collect();
        let host = if host_nodes.contains(n.name.as_str()) { " [host CPU]" } else { "" };
        println!("  {:<14} {}{host} <- replaces {}: {}", n.op, n.name, n.replaced.len(), list.join(", "));
        let entry = summary.entry(n.op).or_default();
        entry.0 += 1;
        for (_, op) in &n.replaced {
            *entry.1.entry(op).or_default() += 1;
        }
    }
    if summary.is_empty() {
        println!("  nothing fused or rewritten");
    }
    if !helpers.is_empty() {
        let h: Vec<String> = helpers.iter().map(|(op, k)| format!("{op} {k}")).collect();
        println!("  new helper nodes (replacing no original node): {}", h.join(", "));
    }
    println!("summary:");
    for (op, (count, replaced)) in &summary {
        let total: usize = replaced.values().sum();
        let ops: Vec<String> = replaced.iter().map(|(o, k)| format!("{o} {k}")).collect();
        println!("  {op:<14} {count} nodes replacing {total} ({})", ops.join(", "));
    }
    if let Some((npu, host)) = &r.placement {
        let h: Vec<String> = host.iter().map(|(op, k)| format!("{op} {k}")).collect();
        let h = if h.is_empty() { "none".to_string() } else { h.join(", ") };
        println!("on the host CPU ({} has no native form): {h} ({npu} ops on the NPU)", t.name);
    }
    Ok(())
}

/// `inspect --support`: one row per op type of an ONNX model, one column
/// per CPU target descriptor. Every CPU target lowers every op the importer
/// accepts (f32; other dtypes are checked when compiling). NPU targets are
/// left out: where each node runs on them is decided per IR node by the NPU
/// backend (issue #6).
fn inspect_support(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let uses = nanoc::onnx::op_support(&bytes, &path.display().to_string())?;
    let mut targets = nanoc_targets::list()?;
    targets.retain(|t| t.kind == nanoc_targets::TargetKind::Cpu);
    let mut header = format!("{:<40} {:>6}", "op type", "nodes");
    for t in &targets {
        header.push_str(&format!(" {:>14}", t.name));
    }
    println!("{header}");
    for u in &uses {
        let name = if u.domain.is_empty() { u.op_type.clone() } else { format!("{}:{}", u.domain, u.op_type) };
        let mut row = format!("{name:<40} {:>6}", u.count);
        for _ in &targets {
            row.push_str(&format!(" {:>14}", if u.supported { "yes" } else { "no" }));
        }
        println!("{row}");
    }
    let missing = uses.iter().filter(|u| !u.supported).count();
    println!("{} op types, {missing} unsupported", uses.len());
    Ok(())
}

fn inspect_bundle(path: &Path) -> Result<()> {
    let m = nanoc_runtime::Model::from_file(path)?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!("bundle {} ({bytes} bytes)", path.display());
    println!("  target: {} ({})", m.target(), m.triple());
    println!("  arena: {} bytes", m.arena_size());
    println!("  kernels: {} ({} bytes of code), steps: {}", m.kernel_count(), m.code_size(), m.step_count());
    println!("  weights: {} bytes", m.weights_size());
    for s in m.inputs() {
        println!("  input  {}: {}{:?} @arena+{}", s.name, s.elem.name(), s.shape, s.offset);
    }
    for s in m.outputs() {
        println!("  output {}: {}{:?} @arena+{}", s.name, s.elem.name(), s.shape, s.offset);
    }
    if m.inputs().is_empty() && m.outputs().is_empty() {
        bail!("{}: bundle has no inputs or outputs", path.display());
    }
    Ok(())
}
