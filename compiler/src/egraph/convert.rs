//! IR graph → e-graph → IR graph.
//!
//! [`to_egraph`] adds every node of a verified graph (inputs and constants
//! become leaves indexing the analysis tables) and remembers each node's
//! name and insertion position. [`to_ir`] rebuilds a graph from one chosen
//! e-node per e-class: inputs keep their order and names, outputs their
//! order and names, and a chosen e-node that is an original node keeps its
//! name and its place in the insertion order, so a graph that no rule
//! touched prints exactly as before. Conversion itself changes two things:
//! nodes no output uses are dropped, and two nodes computing the same op on
//! the same operands are one e-node, so such duplicates come back as one
//! (the first). A new e-node is named after the
//! original node it replaces (the first original node of its e-class, else
//! of its first user's) and the rule that made it:
//! `/h.0/mlp/act/Mul_1/gelu-erf-a`.

use super::analysis::{EGraph, NanoAnalysis};
use super::lang::{ENode, OpKind, build_op};
use egg::{Id, Language};
use nanoc_ir::{Graph, NodeId, Op, TensorType};
use std::collections::{BTreeSet, HashMap, HashSet};

/// What [`to_ir`] needs to know about the original graph.
#[derive(Clone, Debug, Default)]
pub struct Origins {
    graph_name: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    /// Every original node: its e-node as added, name, insertion position.
    nodes: Vec<(ENode, String, usize)>,
    /// The e-class each original node was added to (same order as `nodes`).
    classes: Vec<Id>,
}

impl Origins {
    /// The original e-nodes with canonical children, each with its
    /// (position, name); the first position wins when two became one.
    pub fn canonical(&self, eg: &EGraph) -> HashMap<ENode, (usize, String)> {
        let mut m: HashMap<ENode, (usize, String)> = HashMap::with_capacity(self.nodes.len());
        for (n, name, pos) in &self.nodes {
            let key = n.clone().map_children(|c| eg.find(c));
            match m.get(&key) {
                Some((p, _)) if *p <= *pos => {}
                _ => {
                    m.insert(key, (*pos, name.clone()));
                }
            }
        }
        m
    }

    /// Every original node as (e-node as added, name, insertion position,
    /// e-class as added): ids need [`egg::EGraph::find`] after rewriting.
    pub fn nodes(&self) -> impl Iterator<Item = (&ENode, &str, usize, Id)> {
        self.nodes.iter().zip(&self.classes).map(|((n, name, pos), &c)| (n, name.as_str(), *pos, c))
    }

    /// Number of original nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if the graph had no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// An IR graph in an e-graph: the e-graph, the e-class of each output (in
/// order), and what [`to_ir`] needs to rebuild names and order.
pub struct Converted {
    /// The e-graph (its analysis holds the input types and constants).
    pub egraph: EGraph,
    /// The e-class of each graph output, in output order.
    pub roots: Vec<Id>,
    /// Names and positions of the original nodes.
    pub origins: Origins,
}

/// Adds a verified graph to a new e-graph.
pub fn to_egraph(g: &Graph) -> Result<Converted, String> {
    let mut analysis = NanoAnalysis::default();
    analysis.inputs = g.inputs().iter().map(|&i| g.node(i).ty.clone()).collect();
    let mut eg = EGraph::new(analysis);
    let position: HashMap<NodeId, usize> = g.node_ids().into_iter().enumerate().map(|(i, id)| (id, i)).collect();
    let input_index: HashMap<NodeId, usize> = g.inputs().iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let mut class: HashMap<NodeId, Id> = HashMap::with_capacity(g.node_count());
    let mut origins = Origins {
        graph_name: g.name.clone(),
        inputs: g.inputs().iter().map(|&i| g.node(i).name.clone()).collect(),
        outputs: g.outputs().iter().map(|(n, _)| n.clone()).collect(),
        nodes: Vec::with_capacity(g.node_count()),
        classes: Vec::with_capacity(g.node_count()),
    };
    let order = g.topo_order().map_err(|e| e.to_string())?;
    for id in order {
        let n = g.node(id);
        let enode = match &n.op {
            Op::Input => {
                let i = *input_index.get(&id).ok_or_else(|| format!("input node `{}` is not a graph input", n.name))?;
                ENode::input(i)
            }
            Op::Const(t) => {
                eg.analysis.consts.push(t.clone());
                ENode::constant(eg.analysis.consts.len() - 1)
            }
            op => {
                let args = g.args(id);
                let children: Vec<Id> = args.iter().map(|a| class[a]).collect();
                let tys: Vec<&TensorType> = args.iter().map(|&a| &g.node(a).ty).collect();
                ENode::op(op, &tys, &n.ty, children)
            }
        };
        let c = eg.add(enode.clone());
        if eg[c].data.ty != n.ty {
            return Err(format!("node `{}`: type {} in the graph but {} in the e-graph", n.name, n.ty, eg[c].data.ty));
        }
        class.insert(id, c);
        origins.nodes.push((enode, n.name.clone(), position[&id]));
        origins.classes.push(c);
    }
    if let Some(e) = eg.analysis.errors.first() {
        return Err(e.clone());
    }
    let roots = g.outputs().iter().map(|(_, id)| eg.find(class[id])).collect();
    Ok(Converted { egraph: eg, roots, origins })
}

/// Rebuilds an IR graph from the e-node `choice` gives for each e-class
/// reachable from `roots` (children need not be canonical).
pub fn to_ir(eg: &EGraph, roots: &[Id], origins: &Origins, choice: impl Fn(Id) -> ENode) -> Result<Graph, String> {
    Ok(to_ir_with_classes(eg, roots, origins, choice)?.0)
}

/// [`to_ir`], also returning the (canonical) e-class of every node of the
/// rebuilt graph.
pub fn to_ir_with_classes(
    eg: &EGraph,
    roots: &[Id],
    origins: &Origins,
    choice: impl Fn(Id) -> ENode,
) -> Result<(Graph, HashMap<NodeId, Id>), String> {
    let originals = origins.canonical(eg);
    let created: HashMap<ENode, &'static str> =
        eg.analysis.created.iter().map(|(n, r)| (n.clone().map_children(|c| eg.find(c)), *r)).collect();

    // The chosen e-node of every reachable class, in DFS post-order
    // (operands first).
    let mut chosen: HashMap<Id, ENode> = HashMap::new();
    let mut post: Vec<Id> = Vec::new();
    let mut stack: Vec<(Id, bool)> = roots.iter().rev().map(|&r| (eg.find(r), false)).collect();
    let mut on_path: HashSet<Id> = HashSet::new();
    while let Some((c, expanded)) = stack.pop() {
        if expanded {
            on_path.remove(&c);
            post.push(c);
            continue;
        }
        if chosen.contains_key(&c) {
            continue;
        }
        if !on_path.insert(c) {
            return Err(format!("the chosen e-nodes form a cycle through e-class {c}"));
        }
        let n = choice(c).map_children(|k| eg.find(k));
        stack.push((c, true));
        for &k in n.children().iter().rev() {
            if !chosen.contains_key(&k) {
                stack.push((k, false));
            }
        }
        chosen.insert(c, n);
    }

    // Original position and name of each class's chosen node, and of the
    // class itself (its first original node: what a new node replaces).
    let anchor_of = |c: Id| -> Option<(usize, String)> {
        eg[c].nodes.iter().filter_map(|n| originals.get(n)).min_by_key(|(p, _)| *p).cloned()
    };
    let mut anchor: HashMap<Id, Option<(usize, String)>> = HashMap::new();
    let mut inherited: HashMap<Id, Option<(usize, String)>> = HashMap::new();
    for &c in post.iter().rev() {
        // Reverse post-order visits users before operands; an operand with
        // no original node of its own takes its first user's anchor.
        let a = anchor_of(c).or_else(|| inherited.get(&c).cloned().flatten());
        for &k in chosen[&c].children() {
            inherited.entry(k).or_insert_with(|| a.clone());
        }
        anchor.insert(c, a);
    }

    // Sort keys: an original node keeps its position; a new one goes right
    // after the node it replaces.
    let mut key: HashMap<Id, (usize, usize)> = HashMap::new();
    for (seq, &c) in post.iter().enumerate() {
        let k = match originals.get(&chosen[&c]) {
            Some((p, _)) => (*p, 0),
            None => (anchor[&c].as_ref().map_or(usize::MAX, |(p, _)| *p), 1 + seq),
        };
        key.insert(c, k);
    }

    // Names: originals keep theirs; new nodes get `<anchor>/<rule>`.
    let mut used: HashSet<String> = origins.inputs.iter().cloned().collect();
    for c in &post {
        if let Some((_, name)) = originals.get(&chosen[c]) {
            used.insert(name.clone());
        }
    }
    let mut g = Graph::new(origins.graph_name.clone());
    let mut node_of: HashMap<Id, NodeId> = HashMap::new();
    let input_ids: Vec<NodeId> = origins
        .inputs
        .iter()
        .enumerate()
        .map(|(i, name)| g.add_input(name.clone(), eg.analysis.inputs[i].clone()))
        .collect();
    for &c in &post {
        if let Some(OpKind::Input(i)) = chosen[&c].info().map(|i| &i.kind) {
            node_of.insert(c, *input_ids.get(*i).ok_or_else(|| format!("no graph input #{i}"))?);
        }
    }

    // Kahn's algorithm, ready nodes taken in sort-key order.
    let mut pending: HashMap<Id, usize> = HashMap::new();
    let mut users: HashMap<Id, Vec<Id>> = HashMap::new();
    let mut ready: BTreeSet<((usize, usize), Id)> = BTreeSet::new();
    for &c in &post {
        if node_of.contains_key(&c) {
            continue;
        }
        let kids: BTreeSet<Id> = chosen[&c].children().iter().copied().filter(|k| !node_of.contains_key(k)).collect();
        for &k in &kids {
            users.entry(k).or_default().push(c);
        }
        if kids.is_empty() {
            ready.insert((key[&c], c));
        } else {
            pending.insert(c, kids.len());
        }
    }
    while let Some((_, c)) = ready.pop_first() {
        let n = &chosen[&c];
        let info = n.info().ok_or_else(|| format!("wildcard e-node `{n}` was extracted"))?;
        let name = match originals.get(n) {
            Some((_, name)) => name.clone(),
            None => {
                let rule = created.get(n).copied().unwrap_or("rewrite");
                let base = match &anchor[&c] {
                    Some((_, a)) => format!("{a}/{rule}"),
                    None => rule.to_string(),
                };
                let mut name = base.clone();
                let mut k = 2;
                while used.contains(&name) {
                    name = format!("{base}_{k}");
                    k += 1;
                }
                used.insert(name.clone());
                name
            }
        };
        let id = match &info.kind {
            OpKind::Input(i) => return Err(format!("graph input #{i} is not in the input list")),
            OpKind::Const(i) => {
                let t = eg.analysis.consts.get(*i).ok_or_else(|| format!("no constant #{i}"))?;
                g.add_const(name, t.clone())
            }
            OpKind::Op(_) => {
                let (op, _) = build_op(n)?;
                let args: Vec<NodeId> = n.children().iter().map(|k| node_of[k]).collect();
                g.add_node(name, op, &args, eg[c].data.ty.clone())
            }
        };
        node_of.insert(c, id);
        for u in users.remove(&c).unwrap_or_default() {
            if let Some(p) = pending.get_mut(&u) {
                *p -= 1;
                if *p == 0 {
                    pending.remove(&u);
                    ready.insert((key[&u], u));
                }
            }
        }
    }
    if !pending.is_empty() {
        return Err("the chosen e-nodes form a cycle".into());
    }
    for (name, r) in origins.outputs.iter().zip(roots) {
        let id = node_of.get(&eg.find(*r)).ok_or_else(|| format!("output `{name}` was not extracted"))?;
        g.add_output(name.clone(), *id);
    }
    let classes = node_of.into_iter().map(|(c, id)| (id, c)).collect();
    Ok((g, classes))
}
