//! Extraction: a roofline cost per op from the target descriptor, and a
//! greedy extractor that picks the cheapest e-node of every e-class.
//!
//! **Cost of one op** (on a CPU target):
//! `max(flops / peak, bytes / bandwidth) + launch overhead`, where peak =
//! clock × f32 lanes of the widest vector × 2 (FMA) × 2 (issue ports),
//! bandwidth = one vector load per cycle
//! (nano models live in L1/L2), and every kernel pays a fixed overhead (the
//! runtime runs one kernel per node). Bytes are every operand read plus the
//! result written. A fused op is one kernel and reads its input once, so it
//! beats its decomposition on every target with a launch overhead or finite
//! bandwidth. An op the target cannot run natively (the CPU backend's float
//! kernels are f32 only) costs infinity unless it was in the input graph.
//!
//! **Extraction** is greedy and bottom-up like egg's `Extractor`, with two
//! changes that matter on deep models. egg's tree cost counts a shared value
//! once per use, so it doubles at every residual connection: past ~20
//! transformer layers the costs overflow or lose all precision and deep
//! fusions are no longer chosen; and its fixpoint sweep takes as many passes
//! as the graph is deep. Here:
//!
//! 1. Knuth's generalisation of Dijkstra, on the critical path (an e-node
//!    costs its op plus its costliest operand), visits every e-class once
//!    in O(E log E) and orders them so that each has an e-node over earlier
//!    classes only: choices restricted to those are acyclic.
//! 2. In that order each class takes its cheapest such e-node, costed as its
//!    op plus the cost of its *private* operands (classes no other class
//!    uses); shared operands are computed anyway and count zero. A value is
//!    thus counted once, costs stay local, and a fusion deep in the graph is
//!    decided as precisely as one at the top.
//!
//! Costs are integers (picoseconds), so ties are exact; on a tie the
//! original e-node wins, so a rewrite that gains nothing changes nothing.

use super::analysis::EGraph;
use super::lang::{ENode, OpKind};
use egg::{Id, Language};
use nanoc_ir::{DType, Graph, Op, OpClass, TensorType, UnaryOp};
use nanoc_targets::Target;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

/// Fixed cost of one kernel launch on a CPU: the runtime's call through the
/// step table, argument loads, loop set-up (ns).
const CPU_KERNEL_OVERHEAD_NS: f64 = 50.0;
/// FMA issue ports assumed per core.
const CPU_FMA_PORTS: f64 = 2.0;

/// The roofline parameters of a target.
#[derive(Clone, Debug)]
pub struct CostModel {
    /// Target name.
    pub target: String,
    /// Peak arithmetic throughput, flops per ns.
    pub flops_per_ns: f64,
    /// Memory bandwidth, bytes per ns.
    pub bytes_per_ns: f64,
    /// Fixed cost per kernel, ns.
    pub overhead_ns: f64,
    /// Float dtypes the target computes natively.
    pub float_dtypes: Vec<DType>,
}

impl CostModel {
    /// The cost model of a target descriptor.
    pub fn for_target(t: &Target) -> Result<CostModel, String> {
        let cpu = t.cpu().ok_or_else(|| format!("target `{}` has no cost model (not a CPU)", t.name))?;
        let lanes = cpu.vector_bits as f64 / 32.0;
        Ok(CostModel {
            target: t.name.clone(),
            flops_per_ns: cpu.clock_ghz * lanes * 2.0 * CPU_FMA_PORTS,
            bytes_per_ns: cpu.clock_ghz * cpu.vector_bits as f64 / 8.0,
            overhead_ns: CPU_KERNEL_OVERHEAD_NS,
            float_dtypes: vec![DType::F32],
        })
    }

    /// Estimated time of one op (ns), or `None` if the target cannot run it.
    pub fn op_ns(&self, op: &Op, args: &[&TensorType], out: &TensorType) -> Option<f64> {
        let native = |t: &TensorType| !t.dtype.is_float() || self.float_dtypes.contains(&t.dtype);
        if !args.iter().all(|t| native(t)) || !native(out) {
            return None;
        }
        let bytes: f64 = args.iter().map(|t| t.byte_len() as f64).sum::<f64>() + out.byte_len() as f64;
        let time = (flops(op, args, out) / self.flops_per_ns).max(bytes / self.bytes_per_ns);
        Some(time + self.overhead_ns)
    }

    /// Estimated time of a whole graph (ns): the sum over its op nodes.
    pub fn graph_ns(&self, g: &Graph) -> f64 {
        g.node_ids()
            .into_iter()
            .filter_map(|id| {
                let n = g.node(id);
                if matches!(n.op, Op::Input | Op::Const(_)) {
                    return None;
                }
                let args = g.args(id);
                let tys: Vec<&TensorType> = args.iter().map(|&a| &g.node(a).ty).collect();
                Some(self.op_ns(&n.op, &tys, &n.ty).unwrap_or(0.0))
            })
            .sum()
    }
}

/// Arithmetic of one op (flops, counting a transcendental function as the
/// polynomial the CPU backend evaluates).
fn flops(op: &Op, args: &[&TensorType], out: &TensorType) -> f64 {
    let n = out.shape.numel() as f64;
    let input = args.first().map_or(0.0, |t| t.shape.numel() as f64);
    match op {
        Op::MatMul => {
            let k = args.first().and_then(|a| a.shape.dims().last()).copied().unwrap_or(1) as f64;
            2.0 * n * k
        }
        Op::Conv { .. } => {
            // Each output element: a dot product over C/group × kernel.
            let w = args.get(1).map_or(1.0, |w| w.shape.dims().iter().skip(1).product::<usize>() as f64);
            2.0 * n * w
        }
        Op::Unary(u) => n * unary_flops(*u),
        Op::Binary(_) => {
            n * match op.name() {
                "pow" => 40.0,
                "div" => 4.0,
                _ => 1.0,
            }
        }
        Op::Softmax { .. } => n * 24.0,
        Op::LayerNorm { .. } => n * 8.0,
        Op::RmsNorm { .. } => n * 5.0,
        _ => match op.class() {
            OpClass::Leaf | OpClass::Movement => 0.0,
            OpClass::Elementwise => n,
            OpClass::Reduction => input.max(n),
            OpClass::Contraction | OpClass::Normalization => 4.0 * n,
        },
    }
}

/// Flops per element of a unary function: the polynomial and range
/// reduction of the transcendental ones, 1 for the rest.
fn unary_flops(u: UnaryOp) -> f64 {
    let name = Op::Unary(u).name();
    match name {
        "exp" | "log" | "sigmoid" | "softplus" => 16.0,
        "erf" | "tanh" => 20.0,
        "gelu" => 24.0,
        "silu" => 18.0,
        "gelu_tanh" => 26.0,
        "sqrt" | "reciprocal" => 4.0,
        _ => 1.0,
    }
}

/// The cost of one e-node (ps), or `None` if the target cannot run it.
/// `original` e-nodes are always runnable (they came from the input graph).
pub fn enode_ps(model: &CostModel, eg: &EGraph, class: Id, n: &ENode, original: bool) -> Option<u64> {
    let info = n.info()?;
    match &info.kind {
        OpKind::Input(_) | OpKind::Const(_) => Some(0),
        OpKind::Op(cell) => {
            let (op, _) = cell.get()?;
            let tys: Vec<&TensorType> = n.children().iter().map(|&c| &eg[c].data.ty).collect();
            let ns = match model.op_ns(op, &tys, &eg[class].data.ty) {
                Some(ns) => ns,
                None if original => model.overhead_ns,
                None => return None,
            };
            Some(((ns * 1000.0).round() as u64).max(1))
        }
    }
}

/// The result of extraction.
pub struct Extraction {
    /// The chosen e-node of every e-class that has one (canonical children).
    pub choice: HashMap<Id, ENode>,
    /// Estimated time of the extracted graph (ns): the sum over chosen op
    /// e-nodes reachable from the roots.
    pub estimate_ns: f64,
}

/// One e-node as extraction sees it.
struct Cand {
    node: ENode,
    /// Dense indices of its distinct operand classes.
    kids: Vec<usize>,
    /// Op cost (ps); `None` if the target cannot run it.
    cost: Option<u64>,
    original: bool,
}

/// Greedy extraction (see the module docs). `originals` are the input
/// graph's e-nodes (canonical), preferred on ties.
pub fn extract(eg: &EGraph, roots: &[Id], model: &CostModel, originals: &HashSet<ENode>) -> Extraction {
    // Dense class indices in id order.
    let mut ids: Vec<Id> = eg.classes().map(|c| c.id).collect();
    ids.sort();
    let len = ids.last().map_or(0, |&i| usize::from(i) + 1);
    let mut dense = vec![usize::MAX; len];
    for (i, &c) in ids.iter().enumerate() {
        dense[usize::from(c)] = i;
    }
    let ix = |c: Id| dense[usize::from(eg.find(c))];
    let n = ids.len();
    let mut shared = vec![false; n];
    for &r in roots {
        shared[ix(r)] = true;
    }

    // Candidates of every class; who uses whom.
    let mut cands: Vec<Vec<Cand>> = Vec::with_capacity(n);
    let mut parents: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    let mut last_parent = vec![usize::MAX; n];
    let mut remaining: Vec<Vec<usize>> = Vec::with_capacity(n);
    let mut heap: BinaryHeap<Reverse<(u64, bool, usize, usize)>> = BinaryHeap::new();
    for (ci, &c) in ids.iter().enumerate() {
        let mut list = Vec::with_capacity(eg[c].nodes.len());
        let mut rem = Vec::with_capacity(eg[c].nodes.len());
        for node in &eg[c].nodes {
            let node = node.clone().map_children(|k| eg.find(k));
            let original = originals.contains(&node);
            let cost = enode_ps(model, eg, c, &node, original);
            let mut kids: Vec<usize> = node.children().iter().map(|&k| ix(k)).collect();
            kids.sort_unstable();
            kids.dedup();
            for &k in &kids {
                if k != ci && last_parent[k] != ci {
                    // A second distinct user class makes a class shared.
                    shared[k] |= last_parent[k] != usize::MAX;
                    last_parent[k] = ci;
                }
            }
            let j = list.len();
            rem.push(kids.len());
            if let Some(cost) = cost.filter(|_| !kids.contains(&ci)) {
                if kids.is_empty() {
                    heap.push(Reverse((cost, !original, ci, j)));
                }
                for &k in &kids {
                    parents[k].push((ci, j));
                }
            }
            list.push(Cand { node, kids, cost, original });
        }
        cands.push(list);
        remaining.push(rem);
    }

    // Phase 1: Knuth's algorithm on the critical path (an e-node costs its
    // op plus its costliest operand), which orders the classes so that
    // every class has an e-node over earlier classes only.
    let mut rank = vec![usize::MAX; n];
    let mut path = vec![0u64; n];
    let mut order: Vec<usize> = Vec::with_capacity(n);
    while let Some(Reverse((cost, _, c, _))) = heap.pop() {
        if rank[c] != usize::MAX {
            continue;
        }
        rank[c] = order.len();
        order.push(c);
        path[c] = cost;
        for &(p, pj) in &parents[c] {
            if rank[p] != usize::MAX {
                continue;
            }
            remaining[p][pj] -= 1;
            if remaining[p][pj] > 0 {
                continue;
            }
            let cand = &cands[p][pj];
            let longest = cand.kids.iter().map(|&k| path[k]).max().unwrap_or(0);
            heap.push(Reverse((cand.cost.unwrap_or(0).saturating_add(longest), !cand.original, p, pj)));
        }
    }

    // Phase 2: in that order, each class takes its cheapest e-node over
    // earlier classes, costed as its op plus its private operands' costs.
    let mut best: Vec<Option<(u64, usize)>> = vec![None; n];
    for &c in &order {
        let mut pick: Option<(u64, bool, usize)> = None;
        for (j, cand) in cands[c].iter().enumerate() {
            let Some(op_cost) = cand.cost else { continue };
            if !cand.kids.iter().all(|&k| rank[k] < rank[c]) {
                continue;
            }
            let mut cost = op_cost;
            for &k in cand.kids.iter().filter(|&&k| !shared[k]) {
                cost = cost.saturating_add(best[k].map_or(0, |b| b.0));
            }
            let key = (cost, !cand.original, j);
            if pick.is_none_or(|p| key < p) {
                pick = Some(key);
            }
        }
        best[c] = pick.map(|(cost, _, j)| (cost, j));
    }

    let mut choice: HashMap<Id, ENode> = HashMap::with_capacity(n);
    for (ci, b) in best.iter().enumerate() {
        if let Some((_, j)) = b {
            choice.insert(ids[ci], cands[ci][*j].node.clone());
        }
    }
    // The estimate: each reachable chosen e-node once.
    let mut seen = vec![false; n];
    let mut stack: Vec<usize> = roots.iter().map(|&r| ix(r)).collect();
    let mut ps = 0u64;
    while let Some(c) = stack.pop() {
        if std::mem::replace(&mut seen[c], true) {
            continue;
        }
        if let Some((_, j)) = best[c] {
            let cand = &cands[c][j];
            ps = ps.saturating_add(cand.cost.unwrap_or(0));
            stack.extend(cand.kids.iter().copied());
        }
    }
    Extraction { choice, estimate_ns: ps as f64 / 1000.0 }
}

/// egg's tree cost over the same per-op model, for use with
/// [`egg::Extractor`] (the unit tests check both extractors agree on small
/// graphs).
pub struct TreeCost<'a> {
    /// The model.
    pub model: &'a CostModel,
    /// The e-graph the nodes live in.
    pub egraph: &'a EGraph,
}

impl egg::CostFunction<ENode> for TreeCost<'_> {
    type Cost = f64;

    fn cost<C: FnMut(Id) -> f64>(&mut self, enode: &ENode, mut costs: C) -> f64 {
        let class = self.egraph.lookup(enode.clone());
        let own = class
            .and_then(|c| enode_ps(self.model, self.egraph, c, enode, false))
            .map_or(f64::INFINITY, |ps| ps as f64 / 1000.0);
        enode.fold(own, |sum, k| sum + costs(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egraph::convert::to_egraph;
    use crate::egraph::rules::{activation, check::example_graph};
    use egg::{Runner, SimpleScheduler};

    /// On a small graph (no sharing to speak of) egg's extractor with the
    /// tree cost and this one pick the same root e-node: the fused GELU or
    /// SiLU.
    #[test]
    fn agrees_with_egg_extractor_on_small_graphs() {
        let target = Target::find("cpu-x86_64").unwrap();
        let model = CostModel::for_target(&target).unwrap();
        for rule in activation::rules() {
            let g = example_graph(&rule);
            let c = to_egraph(&g).unwrap();
            let rw = rule.compile().unwrap();
            let eg = Runner::default()
                .with_egraph(c.egraph)
                .with_scheduler(SimpleScheduler)
                .run(std::slice::from_ref(&rw))
                .egraph;
            let root = eg.find(c.roots[0]);
            let originals: HashSet<ENode> = c.origins.canonical(&eg).into_keys().collect();
            let ours = extract(&eg, &[root], &model, &originals);
            let egg_best =
                egg::Extractor::new(&eg, TreeCost { model: &model, egraph: &eg }).find_best_node(root).clone();
            assert_eq!(ours.choice[&root], egg_best, "rule {}", rule.name);
            let fused = ["gelu", "gelu_tanh", "silu"].iter().any(|op| ours.choice[&root].is(op));
            assert!(fused, "rule {}", rule.name);
        }
    }

    #[test]
    fn fused_ops_cost_less_than_their_decompositions() {
        let target = Target::find("cpu-x86_64").unwrap();
        let m = CostModel::for_target(&target).unwrap();
        let t = TensorType::new(DType::F32, vec![16usize, 256]);
        let s = TensorType::new(DType::F32, Vec::<usize>::new());
        let unary = |u| m.op_ns(&Op::Unary(u), &[&t], &t).unwrap();
        let bin = |b| m.op_ns(&Op::Binary(b), &[&t, &s], &t).unwrap();
        use nanoc_ir::BinaryOp::*;
        let decomposed = bin(Div) + unary(UnaryOp::Erf) + bin(Add) + bin(Mul) + bin(Mul);
        assert!(unary(UnaryOp::Gelu) < decomposed / 2.0, "{} vs {decomposed}", unary(UnaryOp::Gelu));
        // f16 is not native on the CPU target.
        let h = TensorType::new(DType::F16, vec![16usize, 256]);
        assert_eq!(m.op_ns(&Op::Unary(UnaryOp::Gelu), &[&h], &h), None);
    }
}
