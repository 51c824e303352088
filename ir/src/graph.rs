//! The dataflow graph: nodes hold an op and its result type; edges carry
//! operand positions. Stored on petgraph's `StableGraph`, so node ids stay
//! valid when other nodes are removed.

use crate::{IrError, Op, Result, Tensor, TensorType};
use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;

/// Identifies a node in a [`Graph`].
pub type NodeId = NodeIndex<u32>;

/// One node: a named op producing one value.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Name (from the source model, or made up by a pass); unique in the graph.
    pub name: String,
    /// The operation.
    pub op: Op,
    /// Type of the value it produces.
    pub ty: TensorType,
}

/// A model graph with named inputs and outputs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// The graph's name.
    pub name: String,
    dag: StableDiGraph<Node, u32>,
    inputs: Vec<NodeId>,
    outputs: Vec<(String, NodeId)>,
}

impl Graph {
    /// An empty graph.
    pub fn new(name: impl Into<String>) -> Self {
        Graph { name: name.into(), ..Default::default() }
    }

    /// Adds a graph input.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> NodeId {
        let id = self.dag.add_node(Node { name: name.into(), op: Op::Input, ty });
        self.inputs.push(id);
        id
    }

    /// Adds a constant.
    pub fn add_const(&mut self, name: impl Into<String>, t: Tensor) -> NodeId {
        let ty = t.ty().clone();
        self.dag.add_node(Node { name: name.into(), op: Op::Const(t), ty })
    }

    /// Adds a node with a given type, without checking it (the verifier does).
    pub fn add_node(&mut self, name: impl Into<String>, op: Op, args: &[NodeId], ty: TensorType) -> NodeId {
        let id = self.dag.add_node(Node { name: name.into(), op, ty });
        for (i, &a) in args.iter().enumerate() {
            self.dag.add_edge(a, id, i as u32);
        }
        id
    }

    /// Adds a node whose type is inferred from its operands (ops that take
    /// their shape from the node, like reshape, must use [`Graph::add_node`]).
    pub fn add_op(&mut self, name: impl Into<String>, op: Op, args: &[NodeId]) -> Result<NodeId> {
        let name = name.into();
        let tys: Vec<&TensorType> = args.iter().map(|&a| &self.dag[a].ty).collect();
        let placeholder = TensorType::new(crate::DType::F32, Vec::new());
        let ty = op
            .infer(&tys, &placeholder)
            .map_err(|msg| IrError::Invalid(format!("node `{name}` ({}): {msg}", op.name())))?;
        Ok(self.add_node(name, op, args, ty))
    }

    /// Marks `id` as the graph output called `name`.
    pub fn add_output(&mut self, name: impl Into<String>, id: NodeId) {
        self.outputs.push((name.into(), id));
    }

    /// The node behind `id`. Panics on a stale id (a programming error).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.dag[id]
    }

    /// Mutable access to a node.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.dag[id]
    }

    /// Operands of `id` in operand order.
    pub fn args(&self, id: NodeId) -> Vec<NodeId> {
        let mut e: Vec<(u32, NodeId)> =
            self.dag.edges_directed(id, Direction::Incoming).map(|e| (*e.weight(), e.source())).collect();
        e.sort_by_key(|&(i, _)| i);
        e.into_iter().map(|(_, s)| s).collect()
    }

    /// Nodes that use `id` (each once).
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut u: Vec<NodeId> = self.dag.neighbors_directed(id, Direction::Outgoing).collect();
        u.sort();
        u.dedup();
        u
    }

    /// Graph inputs in order.
    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    /// Graph outputs in order: (name, node).
    pub fn outputs(&self) -> &[(String, NodeId)] {
        &self.outputs
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.dag.node_count()
    }

    /// All node ids in insertion order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.dag.node_indices().collect()
    }

    /// Nodes in a topological order (operands before users), with ties broken
    /// by insertion order so the order is deterministic. Errors on a cycle,
    /// naming a node on it.
    pub fn topo_order(&self) -> Result<Vec<NodeId>> {
        let ids = self.node_ids();
        let mut indeg: std::collections::HashMap<NodeId, usize> =
            ids.iter().map(|&id| (id, self.dag.edges_directed(id, Direction::Incoming).count())).collect();
        let mut ready: std::collections::BTreeSet<NodeId> = ids.iter().copied().filter(|id| indeg[id] == 0).collect();
        let mut order = Vec::with_capacity(ids.len());
        while let Some(n) = ready.pop_first() {
            order.push(n);
            for e in self.dag.edges_directed(n, Direction::Outgoing) {
                let t = e.target();
                if let Some(d) = indeg.get_mut(&t) {
                    *d -= 1;
                    if *d == 0 {
                        ready.insert(t);
                    }
                }
            }
        }
        if order.len() != ids.len() {
            let stuck = ids.iter().find(|id| indeg[id] > 0).map(|&id| self.dag[id].name.clone()).unwrap_or_default();
            return Err(IrError::Invalid(format!("graph `{}` has a cycle through node `{stuck}`", self.name)));
        }
        Ok(order)
    }

    /// Redirects every use of `old` (operands and graph outputs) to `new`.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        let uses: Vec<(NodeId, u32, petgraph::stable_graph::EdgeIndex<u32>)> =
            self.dag.edges_directed(old, Direction::Outgoing).map(|e| (e.target(), *e.weight(), e.id())).collect();
        for (user, pos, edge) in uses {
            self.dag.remove_edge(edge);
            self.dag.add_edge(new, user, pos);
        }
        for (_, o) in &mut self.outputs {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Removes nodes that no output depends on (inputs are kept).
    pub fn remove_dead(&mut self) {
        let mut live = std::collections::HashSet::new();
        let mut stack: Vec<NodeId> = self.outputs.iter().map(|(_, id)| *id).collect();
        stack.extend(self.inputs.iter().copied());
        while let Some(n) = stack.pop() {
            if live.insert(n) {
                stack.extend(self.dag.neighbors_directed(n, Direction::Incoming));
            }
        }
        for id in self.node_ids() {
            if !live.contains(&id) {
                self.dag.remove_node(id);
            }
        }
    }

    /// Sum of the byte sizes of all constants.
    pub fn const_bytes(&self) -> usize {
        self.dag
            .node_weights()
            .filter_map(|n| if let Op::Const(t) = &n.op { Some(t.bytes().len()) } else { None })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BinaryOp, DType};

    #[test]
    fn build_and_order() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::new(DType::F32, vec![2]));
        let c = g.add_const("c", Tensor::from_vec(vec![2], vec![1.0f32, 2.0]).unwrap());
        let y = g.add_op("y", Op::Binary(BinaryOp::Sub), &[x, c]).unwrap();
        g.add_output("y", y);
        assert_eq!(g.args(y), vec![x, c]);
        assert_eq!(g.topo_order().unwrap(), vec![x, c, y]);
        let dead = g.add_op("dead", Op::Binary(BinaryOp::Add), &[x, x]).unwrap();
        g.remove_dead();
        assert_eq!(g.node_count(), 3);
        assert!(!g.node_ids().contains(&dead));
    }
}
