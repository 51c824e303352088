//! What fused where: for every node of the optimised graph that is not an
//! original node, the original nodes it replaced.
//!
//! A new node computes an e-class. The original nodes it replaced are the
//! original nodes of that class, then, walking down their original
//! operands, the original nodes of every operand class the optimised graph
//! no longer computes (classes it still computes are the new node's
//! operands or someone else's work). This needs nothing from the rule that
//! made the node, so ops added later (attention, quantised matmuls,
//! epilogues) show up without changes here.

use super::analysis::EGraph;
use super::convert::Origins;
use egg::{Id, Language};
use nanoc_ir::{Graph, NodeId, Op};
use std::collections::{HashMap, HashSet};

/// One new node of the optimised graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNode {
    /// Its name in the optimised graph.
    pub name: String,
    /// Its op name.
    pub op: &'static str,
    /// The original nodes it replaced (name, op name), in input-graph order;
    /// empty for a helper node a rewrite introduced (a reciprocal, a folded
    /// constant).
    pub replaced: Vec<(String, &'static str)>,
}

/// The new nodes of `out` (whose e-class per node is `class_of`) in graph
/// order, with what each replaced.
pub fn new_nodes(eg: &EGraph, origins: &Origins, out: &Graph, class_of: &HashMap<NodeId, Id>) -> Vec<NewNode> {
    let original_names: HashSet<&str> = origins.nodes().map(|(_, name, _, _)| name).collect();
    let computed: HashSet<Id> = class_of.values().map(|&c| eg.find(c)).collect();
    let mut by_class: HashMap<Id, Vec<(&super::lang::ENode, &str, usize)>> = HashMap::new();
    for (n, name, pos, c) in origins.nodes() {
        by_class.entry(eg.find(c)).or_default().push((n, name, pos));
    }
    let mut out_nodes = Vec::new();
    for id in out.node_ids() {
        let node = out.node(id);
        if matches!(node.op, Op::Input) || original_names.contains(node.name.as_str()) {
            continue;
        }
        let Some(&class) = class_of.get(&id) else { continue };
        let mut replaced: Vec<(usize, String, &'static str)> = Vec::new();
        let mut seen: HashSet<Id> = HashSet::from([eg.find(class)]);
        let mut stack = vec![eg.find(class)];
        while let Some(c) = stack.pop() {
            for (n, name, pos) in by_class.get(&c).into_iter().flatten() {
                if n.children().is_empty() {
                    continue;
                }
                let op = n.info().map_or("?", |i| i.family_name);
                replaced.push((*pos, name.to_string(), op));
                for &k in n.children() {
                    let k = eg.find(k);
                    if !computed.contains(&k) && seen.insert(k) {
                        stack.push(k);
                    }
                }
            }
        }
        replaced.sort();
        replaced.dedup();
        out_nodes.push(NewNode {
            name: node.name.clone(),
            op: node.op.name(),
            replaced: replaced.into_iter().map(|(_, name, op)| (name, op)).collect(),
        });
    }
    out_nodes
}
