//! The staged runner: rulesets run one after the other on the same
//! e-graph, each with its own iteration, e-node and time limits, each
//! reporting what it did and why it stopped.
//!
//! | stage | rules | what it does |
//! | --- | --- | --- |
//! | `canonicalise` | `rules/algebra.rs` (+ constant folding in the analysis) | identities, commutativity, cancelling transposes/reshapes/casts |
//! | `fusion` | `rules/activation.rs`, `rules/norm.rs`, `rules/attention.rs` | GELU (erf, tanh), SiLU, LayerNorm, RMSNorm, softmax from their decompositions (and LayerNorm back into its decomposition, for targets without it); attention from matmul/scale/mask/softmax/matmul |
//! | `quantisation` | `rules/quant.rs` | DequantizeLinear → MatMul (→ QuantizeLinear) into `qmatmul`; blocked weights into `qmatmul_block` |
//! | `sparsity` | `rules/sparsity.rs` | 2:4-sparse constant weights into `sparse_matmul` (chosen only where the target lists `"2:4"`) |
//! | `epilogue` | `rules/epilogue.rs` | bias, activation, residual, scale, clamp and mask select folded into the producing matmul |
//!
//! Every rule is local (its pattern spans one decomposition), so on a stack
//! of N identical layers each iteration does O(N) work and the number of
//! iterations does not grow with N; the node limit (a multiple of the input
//! graph's size) and the time limit bound the rest. egg's `SimpleScheduler`
//! is used: its default `BackoffScheduler` bans a rule that matches more
//! than 1,000 times, which on a deep model means more iterations, not fewer.

use super::analysis::EGraph;
use super::rules::{self, Rule};
use egg::{Runner, SimpleScheduler, StopReason};
use std::fmt;
use std::time::{Duration, Instant};

/// Limits of one stage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StageLimits {
    /// Maximum iterations.
    pub iters: usize,
    /// The e-graph may grow to `nodes_per_input × (e-nodes of the input graph)`
    /// e-nodes, but at least to `min_nodes`.
    pub nodes_per_input: usize,
    /// See `nodes_per_input`.
    pub min_nodes: usize,
    /// Wall-clock limit.
    pub time: Duration,
}

impl StageLimits {
    /// The e-node limit for an input graph of `input_nodes` e-nodes.
    pub fn node_limit(&self, input_nodes: usize) -> usize {
        self.nodes_per_input.saturating_mul(input_nodes).max(self.min_nodes)
    }
}

/// A stage: a name, its rules and default limits.
pub struct Stage {
    /// Name (`canonicalise`, `fusion`).
    pub name: &'static str,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
    /// Its limits.
    pub limits: StageLimits,
    /// Fold constants from this stage on (see `analysis::fold_all`).
    pub fold: bool,
}

/// The default pipeline: every stage, its rules and limits (the one place
/// they are set; [`super::OptOptions::limits`] overrides them).
pub fn default_stages() -> Vec<Stage> {
    let limits = StageLimits { iters: 12, nodes_per_input: 8, min_nodes: 20_000, time: Duration::from_secs(5) };
    vec![
        Stage { name: "canonicalise", rules: rules::algebra::rules(), limits, fold: true },
        Stage {
            name: "fusion",
            rules: [rules::activation::rules(), rules::norm::rules(), rules::attention::rules()].concat(),
            limits,
            fold: false,
        },
        Stage { name: "quantisation", rules: rules::quant::rules(), limits, fold: false },
        Stage { name: "sparsity", rules: rules::sparsity::rules(), limits, fold: false },
        Stage { name: "epilogue", rules: rules::epilogue::rules(), limits, fold: false },
    ]
}

/// What one stage did.
#[derive(Clone, Debug)]
pub struct StageReport {
    /// Stage name.
    pub name: String,
    /// Iterations run.
    pub iterations: usize,
    /// E-nodes after the stage.
    pub enodes: usize,
    /// E-classes after the stage.
    pub eclasses: usize,
    /// Rules that changed the e-graph, with how many times (in rule order);
    /// `const-fold` counts classes that constant folding resolved.
    pub fired: Vec<(String, usize)>,
    /// Why it stopped.
    pub stop: StopReason,
    /// Wall-clock time.
    pub time: Duration,
}

/// Runs `stages` in order on `eg`; `input_nodes` sizes the node limits;
/// every iteration is reported to `progress`.
pub fn run(
    mut eg: EGraph,
    stages: &[Stage],
    input_nodes: usize,
    progress: &super::Progress,
) -> Result<(EGraph, Vec<StageReport>), String> {
    let mut reports = Vec::new();
    for stage in stages {
        let rewrites = stage.rules.iter().map(Rule::compile).collect::<Result<Vec<_>, _>>()?;
        let folds_before = eg.analysis.folds;
        let start = Instant::now();
        if stage.fold && !eg.analysis.fold {
            super::analysis::fold_all(&mut eg);
        }
        let (sink, name) = (progress.clone(), stage.name);
        let runner = Runner::default()
            .with_hook(move |r| {
                sink.say(format_args!(
                    "stage {name}: iteration {}, {} e-nodes, {} e-classes",
                    r.iterations.len() + 1,
                    r.egraph.total_number_of_nodes(),
                    r.egraph.number_of_classes()
                ));
                Ok(())
            })
            .with_egraph(eg)
            .with_scheduler(SimpleScheduler)
            .with_iter_limit(stage.limits.iters)
            .with_node_limit(stage.limits.node_limit(input_nodes))
            .with_time_limit(stage.limits.time)
            .run(&rewrites);
        let time = start.elapsed();
        let stop = runner.stop_reason.clone().unwrap_or(StopReason::Other("not run".into()));
        progress.say(format_args!("stage {}: {}, {:.1} ms", stage.name, stop_text(&stop), time.as_secs_f64() * 1e3));
        let mut fired: Vec<(String, usize)> = stage
            .rules
            .iter()
            .map(|r| {
                let n = runner.iterations.iter().filter_map(|it| it.applied.get(&egg::Symbol::from(r.name))).sum();
                (r.name.to_string(), n)
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let folds = runner.egraph.analysis.folds - folds_before;
        if folds > 0 {
            fired.push(("const-fold".into(), folds));
        }
        reports.push(StageReport {
            name: stage.name.to_string(),
            iterations: runner.iterations.len(),
            enodes: runner.egraph.total_number_of_nodes(),
            eclasses: runner.egraph.number_of_classes(),
            fired,
            stop,
            time,
        });
        eg = runner.egraph;
        if let Some(e) = eg.analysis.errors.first() {
            return Err(format!("stage `{}`: {e}", stage.name));
        }
    }
    Ok((eg, reports))
}

/// The stop reason as report text.
pub fn stop_text(s: &StopReason) -> String {
    match s {
        StopReason::Saturated => "saturated".into(),
        StopReason::IterationLimit(n) => format!("iteration limit ({n})"),
        StopReason::NodeLimit(n) => format!("node limit ({n} e-nodes)"),
        StopReason::TimeLimit(t) => format!("time limit ({t:.1} s)"),
        StopReason::Other(o) => o.clone(),
    }
}

impl StageReport {
    /// The report lines; `times` adds the wall-clock time.
    pub fn render(&self, f: &mut impl fmt::Write, times: bool) -> fmt::Result {
        write!(
            f,
            "  stage {}: {} iterations, {} e-nodes, {} e-classes, stop: {}",
            self.name,
            self.iterations,
            self.enodes,
            self.eclasses,
            stop_text(&self.stop)
        )?;
        if times {
            write!(f, ", {:.1} ms", self.time.as_secs_f64() * 1e3)?;
        }
        writeln!(f)?;
        if self.fired.is_empty() {
            writeln!(f, "    no rule fired")?;
        }
        for (name, n) in &self.fired {
            writeln!(f, "    {name:<24} {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule of every stage compiles (a typo in a pattern fails here,
    /// not in the CLI), and rule names are unique across stages.
    #[test]
    fn default_stages_build() {
        let stages = default_stages();
        let mut names = std::collections::HashSet::new();
        for s in &stages {
            assert!(!s.rules.is_empty(), "stage {} has no rules", s.name);
            for r in &s.rules {
                r.compile().unwrap_or_else(|e| panic!("{e}"));
                assert!(names.insert(r.name), "rule `{}` appears twice", r.name);
            }
        }
        let broken = super::rules::rw("broken", "(gelu ?x", "?x", "", "x:f32[2]");
        assert!(broken.compile().is_err());
        let unknown = super::rules::rw("unknown", "(no_such_op ?x)", "?x", "", "x:f32[2]");
        assert!(unknown.compile().unwrap_err().contains("unknown op `no_such_op`"));
        let unbound = super::rules::rw("unbound", "(neg ?x)", "?y", "", "x:f32[2]");
        assert!(unbound.compile().is_err());
    }
}
