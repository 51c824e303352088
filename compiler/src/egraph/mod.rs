//! The e-graph optimiser (egg).
//!
//! ```text
//! Graph ─to_egraph─▶ EGraph ─canonicalise─▶ ─fusion─▶ ─epilogue─▶ extract (target cost) ─to_ir─▶ fuse ─▶ Graph
//! ```
//!
//! - `lang.rs`: the [`egg::Language`]: one e-node shape for every IR op,
//!   keyed by the op's `.ngraph` text;
//! - `analysis.rs`: per e-class type, constant-ness, small constant values,
//!   constant folding;
//! - `convert.rs`: IR ↔ e-graph, keeping names and order;
//! - `rules/`: the rule tables, one file per topic;
//! - `stages.rs`: the staged runner and its limits;
//! - `cost.rs`: the target's roofline cost model and the extractor;
//! - `fuse.rs`: elementwise-chain fusion of the extracted graph (`fused` nodes);
//! - `provenance.rs`: which original nodes each new node replaced
//!   (`nanoc inspect --fusions`).
//!
//! [`optimize`] runs the whole pipeline and returns the optimised graph with
//! an [`OptReport`] (what `nanoc compile --emit egraph` prints).

pub mod analysis;
pub mod convert;
pub mod cost;
pub mod fuse;
pub mod lang;
pub mod provenance;
pub mod rules;
pub mod stages;

use nanoc_ir::{Graph, Op, verify};
use nanoc_targets::Target;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use stages::{StageLimits, StageReport};

/// An optimiser failure (a bug: the input graph is verified first).
#[derive(Debug, thiserror::Error)]
#[error("e-graph optimiser: {0}")]
pub struct OptError(pub String);

/// Options of the optimiser.
#[derive(Clone, Debug, Default)]
pub struct OptOptions {
    /// Skip the optimiser (the graph is only verified).
    pub no_opt: bool,
    /// Limit overrides by stage name.
    pub limits: Vec<(String, StageLimits)>,
    /// Run only these rules (by name); `None` runs all.
    pub only_rules: Option<Vec<String>>,
    /// Where stage and iteration progress lines go (none by default).
    pub progress: Progress,
    /// The extraction algorithm.
    pub extractor: cost::Extractor,
}

/// A sink for progress lines: each stage's start and every iteration (with
/// the e-graph's size), and extraction. The CLI prints them on stderr
/// unless `--quiet`.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn Fn(&str) + Send + Sync>>);

impl Progress {
    /// Progress lines go to `f`.
    pub fn to(f: impl Fn(&str) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(f)))
    }

    /// Reports one line (nothing without a sink).
    pub fn say(&self, line: impl fmt::Display) {
        if let Some(f) = &self.0 {
            f(&line.to_string());
        }
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Progress(sink)" } else { "Progress(none)" })
    }
}

/// Node counts of a graph.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphStats {
    /// All nodes.
    pub nodes: usize,
    /// Op nodes (one CPU kernel each).
    pub kernels: usize,
    /// Op nodes by op name.
    pub ops: BTreeMap<&'static str, usize>,
}

impl GraphStats {
    /// Counts the nodes of `g`.
    pub fn of(g: &Graph) -> GraphStats {
        let mut s = GraphStats { nodes: g.node_count(), ..Default::default() };
        for id in g.node_ids() {
            let op = &g.node(id).op;
            if !matches!(op, Op::Input | Op::Const(_)) {
                s.kernels += 1;
                *s.ops.entry(op.name()).or_default() += 1;
            }
        }
        s
    }
}

/// What the optimiser did: per stage, and overall.
#[derive(Clone, Debug)]
pub struct OptReport {
    /// Target name.
    pub target: String,
    /// The input graph.
    pub before: GraphStats,
    /// The output graph.
    pub after: GraphStats,
    /// E-nodes after conversion.
    pub initial_enodes: usize,
    /// Each stage.
    pub stages: Vec<StageReport>,
    /// Estimated run time of the input and output graphs (ns).
    pub estimate_ns: (f64, f64),
    /// Time of conversion, of extraction and in total.
    pub times: (Duration, Duration, Duration),
    /// Every node of the output graph that is not an input-graph node, with
    /// the original nodes it replaced.
    pub new_nodes: Vec<provenance::NewNode>,
    /// Elementwise-chain fusion after extraction: `fused` nodes made, the
    /// ops they replaced, and the estimated time before and after (ns).
    pub fusion: (usize, usize, f64, f64),
    /// On an NPU target: (op nodes the NPU runs, op nodes left to the host
    /// CPU by op name); `None` on a CPU target.
    pub placement: Option<(usize, BTreeMap<&'static str, usize>)>,
}

impl OptReport {
    /// The report text; `times` adds wall-clock times (leave them out for
    /// snapshots).
    pub fn render(&self, times: bool) -> String {
        let mut s = String::new();
        let _ = self.write(&mut s, times);
        s
    }

    fn write(&self, f: &mut impl fmt::Write, times: bool) -> fmt::Result {
        writeln!(f, "e-graph optimiser, target {}", self.target)?;
        write!(
            f,
            "  input: {} nodes, {} kernels, {} e-nodes",
            self.before.nodes, self.before.kernels, self.initial_enodes
        )?;
        if times {
            write!(f, ", converted in {:.1} ms", self.times.0.as_secs_f64() * 1e3)?;
        }
        writeln!(f)?;
        for st in &self.stages {
            st.render(f, times)?;
        }
        write!(f, "  extract: estimated {:.2} us -> {:.2} us", self.estimate_ns.0 / 1e3, self.estimate_ns.1 / 1e3)?;
        if times {
            write!(f, ", {:.1} ms", self.times.1.as_secs_f64() * 1e3)?;
        }
        writeln!(f)?;
        let (groups, ops, before_ns, after_ns) = self.fusion;
        writeln!(
            f,
            "  elementwise fusion: {groups} chains of {ops} ops, estimated {:.2} us -> {:.2} us",
            before_ns / 1e3,
            after_ns / 1e3
        )?;
        write!(f, "  output: {} nodes, {} kernels", self.after.nodes, self.after.kernels)?;
        let changed: Vec<String> = self
            .before
            .ops
            .keys()
            .chain(self.after.ops.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter_map(|op| {
                let (a, b) =
                    (self.before.ops.get(op).copied().unwrap_or(0), self.after.ops.get(op).copied().unwrap_or(0));
                (a != b).then(|| format!("{op} {a}->{b}"))
            })
            .collect();
        if !changed.is_empty() {
            write!(f, " ({})", changed.join(", "))?;
        }
        writeln!(f)?;
        if let Some((npu, host)) = &self.placement {
            let on_host: Vec<String> = host.iter().map(|(op, k)| format!("{op} {k}")).collect();
            let total: usize = host.values().sum();
            write!(f, "  placement: {npu} ops on {}, {total} on the host CPU", self.target)?;
            if !on_host.is_empty() {
                write!(f, " ({})", on_host.join(", "))?;
            }
            writeln!(f)?;
        }
        if times {
            writeln!(f, "  total: {:.1} ms", self.times.2.as_secs_f64() * 1e3)?;
        }
        Ok(())
    }
}

impl fmt::Display for OptReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, true)
    }
}

/// Optimises a verified graph for `target`: convert, run the stages,
/// extract with the target's cost model, convert back, verify.
pub fn optimize(g: &Graph, target: &Target, opts: &OptOptions) -> Result<(Graph, OptReport), OptError> {
    let start = Instant::now();
    let model = cost::CostModel::for_target(target).map_err(OptError)?;
    let mut stages = stages::default_stages();
    for st in &mut stages {
        if let Some((_, l)) = opts.limits.iter().find(|(n, _)| n == st.name) {
            st.limits = *l;
        }
        if let Some(only) = &opts.only_rules {
            st.rules.retain(|r| only.iter().any(|o| o == r.name));
        }
    }
    let c = convert::to_egraph(g).map_err(OptError)?;
    let initial_enodes = c.egraph.total_number_of_nodes();
    let convert_time = start.elapsed();
    let (eg, reports) = stages::run(c.egraph, &stages, initial_enodes, &opts.progress).map_err(OptError)?;
    let t = Instant::now();
    opts.progress.say(format_args!("extracting for {} ({} e-classes)", target.name, eg.number_of_classes()));
    let roots: Vec<egg::Id> = c.roots.iter().map(|&r| eg.find(r)).collect();
    let originals: HashSet<lang::ENode> = c.origins.canonical(&eg).into_keys().collect();
    let ext = cost::extract_with(&eg, &roots, &model, &originals, opts.extractor);
    let (out, class_of) = convert::to_ir_with_classes(&eg, &roots, &c.origins, |k| {
        ext.choice.get(&eg.find(k)).cloned().unwrap_or_else(|| eg[k].nodes[0].clone())
    })
    .map_err(OptError)?;
    let mut new_nodes = provenance::new_nodes(&eg, &c.origins, &out, &class_of);
    let extract_time = t.elapsed();
    verify::verify(&out).map_err(|e| OptError(format!("the optimised graph does not verify: {e}")))?;
    let extracted_ns = model.graph_ns(&out);
    let mut out = out;
    let fused = fuse::fuse_elementwise(&mut out, &model).map_err(OptError)?;
    verify::verify(&out).map_err(|e| OptError(format!("the fused graph does not verify: {e}")))?;
    // A fused node replaced its members: original nodes, or new nodes and
    // what they replaced.
    for (name, members) in &fused.replaced {
        let mut replaced = Vec::new();
        for (member, op) in members {
            match new_nodes.iter().position(|n| &n.name == member) {
                Some(i) => replaced.extend(new_nodes.remove(i).replaced),
                None => replaced.push((member.clone(), *op)),
            }
        }
        new_nodes.push(provenance::NewNode { name: name.clone(), op: "fused", replaced });
    }
    let report = OptReport {
        target: target.name.clone(),
        before: GraphStats::of(g),
        after: GraphStats::of(&out),
        initial_enodes,
        stages: reports,
        estimate_ns: (model.graph_ns(g), ext.estimate_ns),
        times: (convert_time, extract_time, start.elapsed()),
        new_nodes,
        fusion: (fused.groups, fused.ops, extracted_ns, model.graph_ns(&out)),
        placement: placement(&model, &out),
    };
    Ok((out, report))
}

/// The op nodes of `g` an NPU target leaves to its host CPU (not native,
/// or outside the op's constraints); `None` on a CPU target.
pub fn host_nodes(model: &cost::CostModel, g: &Graph) -> Option<Vec<nanoc_ir::NodeId>> {
    if !matches!(model.device, cost::Device::Npu(_)) {
        return None;
    }
    let host = g.node_ids().into_iter().filter(|&id| {
        let n = g.node(id);
        let args = g.args(id);
        let tys: Vec<&nanoc_ir::TensorType> = args.iter().map(|&a| &g.node(a).ty).collect();
        let consts: Vec<bool> = args.iter().map(|&a| matches!(g.node(a).op, Op::Const(_))).collect();
        !matches!(n.op, Op::Input | Op::Const(_)) && !model.runs_natively(&n.op, &tys, &consts, &n.ty)
    });
    Some(host.collect())
}

/// Where the op nodes of `g` run on an NPU target (see
/// [`OptReport::placement`]); `None` on a CPU target.
fn placement(model: &cost::CostModel, g: &Graph) -> Option<(usize, BTreeMap<&'static str, usize>)> {
    let host = host_nodes(model, g)?;
    let mut by_op = BTreeMap::new();
    for &id in &host {
        *by_op.entry(g.node(id).op.name()).or_default() += 1;
    }
    Some((GraphStats::of(g).kernels - host.len(), by_op))
}
