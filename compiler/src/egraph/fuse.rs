//! Elementwise-chain fusion: a pass over the extracted graph that merges
//! chains of elementwise ops (unary, binary with broadcasting, clip, cast,
//! where, and earlier `fused` nodes) into one `fused` node each: one
//! kernel, one loop nest, no intermediate buffers.
//!
//! It runs after extraction rather than as e-graph rules: every connected
//! subset of a chain is a candidate fusion, so rules would add exponentially
//! many alternatives, while the decision is local and greedy (XLA's
//! producer-consumer fusion). Walking consumers before producers, a group
//! grows from its last op towards its inputs and takes a producer when
//! - it is a fusable elementwise op the target runs natively,
//! - every user of it is already in the group and it is not a graph output
//!   (nothing is computed twice and no intermediate is stored),
//! - it has as many elements as the group's result (an operand that is
//!   broadcast would be recomputed for every element it is read at),
//! - the group stays within [`MAX_STEPS`] steps and [`MAX_OPERANDS`] operands.
//!
//! A group of two or more ops becomes a `fused` node if the target runs a
//! `fused` op natively and its cost model prices it below the ops it
//! replaces (on a CPU, always: one launch, and the intermediates are
//! neither written nor read; an NPU without a `fused` op keeps its chains,
//! rather than moving them to the host).

use super::cost::CostModel;
use nanoc_ir::{Arg, Graph, NodeId, Op, Program, Step, TensorType, is_fusable};
use std::collections::{BinaryHeap, HashMap, HashSet};

/// At most this many steps in one fused program.
pub const MAX_STEPS: usize = 64;
/// At most this many operands of one fused node.
pub const MAX_OPERANDS: usize = 16;

/// What the pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FuseStats {
    /// `fused` nodes made.
    pub groups: usize,
    /// Ops they replaced.
    pub ops: usize,
    /// Each `fused` node's name with the nodes (name, op name) it replaced,
    /// in topological order.
    pub replaced: Vec<(String, Vec<(String, &'static str)>)>,
}

/// A node's program: its own op as one step over its operands, or the
/// body of a `fused` node.
fn node_program(op: &Op, operands: usize) -> Program {
    match op {
        Op::Fused { body } => body.clone(),
        _ => Program { steps: vec![Step { op: op.clone(), args: (0..operands).map(Arg::Operand).collect() }] },
    }
}

fn fusable(g: &Graph, id: NodeId, model: &CostModel) -> bool {
    let n = g.node(id);
    let elementwise = is_fusable(&n.op) || matches!(n.op, Op::Fused { .. });
    elementwise && {
        let args = g.args(id);
        let tys: Vec<&TensorType> = args.iter().map(|&a| &g.node(a).ty).collect();
        let consts: Vec<bool> = args.iter().map(|&a| matches!(g.node(a).op, Op::Const(_))).collect();
        model.op_ns(&n.op, &tys, &n.ty).is_some() && model.runs_natively(&n.op, &tys, &consts, &n.ty)
    }
}

/// Fuses the elementwise chains of `g` (see the module docs).
pub fn fuse_elementwise(g: &mut Graph, model: &CostModel) -> Result<FuseStats, String> {
    let order = g.topo_order().map_err(|e| e.to_string())?;
    let pos: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let outputs: HashSet<NodeId> = g.outputs().iter().map(|(_, id)| *id).collect();
    let mut taken: HashSet<NodeId> = HashSet::new();
    let mut groups: Vec<Vec<NodeId>> = Vec::new();
    for &root in order.iter().rev() {
        if taken.contains(&root) || !fusable(g, root, model) {
            continue;
        }
        let numel = g.node(root).ty.shape.numel();
        let mut members: HashSet<NodeId> = HashSet::from([root]);
        let mut steps = node_program(&g.node(root).op, 0).steps.len();
        let mut operands: HashSet<NodeId> = g.args(root).into_iter().collect();
        // Candidates, latest first: when one is decided, every user it can
        // have in the group has been decided already.
        let mut heap: BinaryHeap<(usize, NodeId)> = g.args(root).into_iter().map(|a| (pos[&a], a)).collect();
        let mut seen: HashSet<NodeId> = HashSet::new();
        while let Some((_, p)) = heap.pop() {
            if !seen.insert(p) || members.contains(&p) {
                continue;
            }
            let node = g.node(p);
            let ok = !taken.contains(&p)
                && !outputs.contains(&p)
                && node.ty.shape.numel() == numel
                && fusable(g, p, model)
                && g.users(p).iter().all(|u| members.contains(u));
            if !ok {
                continue;
            }
            let p_args = g.args(p);
            let p_steps = node_program(&node.op, p_args.len()).steps.len();
            let mut new_operands = operands.clone();
            new_operands.remove(&p);
            new_operands.extend(p_args.iter().copied());
            if steps + p_steps > MAX_STEPS || new_operands.len() > MAX_OPERANDS {
                continue;
            }
            members.insert(p);
            steps += p_steps;
            operands = new_operands;
            heap.extend(p_args.into_iter().map(|a| (pos[&a], a)));
        }
        if members.len() < 2 {
            continue;
        }
        taken.extend(members.iter().copied());
        let mut group: Vec<NodeId> = members.into_iter().collect();
        group.sort_by_key(|id| pos[id]);
        groups.push(group);
    }
    let mut stats = FuseStats::default();
    for group in groups {
        let Some(&root) = group.last() else { continue };
        let (body, operands) = build(g, &group);
        let root_node = g.node(root);
        let ty = root_node.ty.clone();
        let op = Op::Fused { body };
        let tys: Vec<&TensorType> = operands.iter().map(|&a| &g.node(a).ty).collect();
        let fused_ns = model.op_ns(&op, &tys, &ty);
        let separate_ns: Option<f64> = group
            .iter()
            .map(|&id| {
                let args = g.args(id);
                let t: Vec<&TensorType> = args.iter().map(|&a| &g.node(a).ty).collect();
                model.op_ns(&g.node(id).op, &t, &g.node(id).ty)
            })
            .sum();
        let consts: Vec<bool> = operands.iter().map(|&a| matches!(g.node(a).op, Op::Const(_))).collect();
        let native = model.runs_natively(&op, &tys, &consts, &ty);
        if !native || !matches!((fused_ns, separate_ns), (Some(f), Some(s)) if f < s) {
            continue;
        }
        let inferred = op.infer(&tys, &ty).map_err(|e| format!("fused `{}`: {e}", root_node.name))?;
        if inferred != ty {
            return Err(format!("fused `{}` has type {inferred}, expected {ty}", root_node.name));
        }
        let name = format!("{}/fused", root_node.name);
        let members = group.iter().map(|&m| (g.node(m).name.clone(), g.node(m).op.name())).collect();
        let id = g.add_node(name.clone(), op, &operands, ty);
        g.replace_uses(root, id);
        stats.groups += 1;
        stats.ops += group.len();
        stats.replaced.push((name, members));
    }
    g.remove_dead();
    Ok(stats)
}

/// The program of a group (members in topological order, the root last)
/// and its operands: the members' operands from outside the group, in
/// order of first use.
fn build(g: &Graph, group: &[NodeId]) -> (Program, Vec<NodeId>) {
    let mut operands: Vec<NodeId> = Vec::new();
    let mut result_of: HashMap<NodeId, usize> = HashMap::new();
    let mut steps: Vec<Step> = Vec::new();
    for &id in group {
        let args = g.args(id);
        let mapped: Vec<Arg> = args
            .iter()
            .map(|&a| match result_of.get(&a) {
                Some(&s) => Arg::Step(s),
                None => match operands.iter().position(|&o| o == a) {
                    Some(i) => Arg::Operand(i),
                    None => {
                        operands.push(a);
                        Arg::Operand(operands.len() - 1)
                    }
                },
            })
            .collect();
        // Inline the node's program, its operands renamed.
        let base = steps.len();
        for s in node_program(&g.node(id).op, args.len()).steps {
            let args = s
                .args
                .iter()
                .map(|&a| match a {
                    Arg::Operand(i) => mapped[i],
                    Arg::Step(j) => Arg::Step(base + j),
                })
                .collect();
            steps.push(Step { op: s.op, args });
        }
        result_of.insert(id, steps.len() - 1);
    }
    (Program { steps }, operands)
}
