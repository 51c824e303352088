//! The e-class analysis: every class carries its result type (dtype and
//! shape, from [`Op::infer`](nanoc_ir::Op::infer)), whether it is a
//! constant, and the value of small constants: when every operand of an
//! e-node is a small constant, the node is evaluated with the reference
//! interpreter. Constant folding ([`fold_all`], then for every new class
//! while the stages run) gives such a class a constant leaf; it is off
//! while converting, so conversion alone never changes a graph.
//!
//! Classes of different types never merge: every rewrite is type-checked
//! before it adds anything (see `rules::RuleApplier`), congruence only
//! merges nodes with equal ops over equal-typed operands, and folding adds
//! a constant of the class's own type. [`NanoAnalysis::merge`] asserts it
//! in debug builds and records an error (which fails the optimisation) in
//! release builds.

use super::lang::{ENode, OpKind, const_family};
use egg::{Analysis, DidMerge, Id, Language};
use nanoc_ir::{DType, Tensor, TensorType, interp, text::INLINE_MAX};
use std::collections::HashMap;

/// The e-graph type of the optimiser.
pub type EGraph = egg::EGraph<ENode, NanoAnalysis>;

/// Constants with at most this many elements have a value in the analysis
/// (and are folded); the text format prints them inline.
pub const SMALL_CONST: usize = INLINE_MAX;

/// Data of one e-class.
#[derive(Clone, Debug)]
pub struct ClassData {
    /// The result type of every node in the class.
    pub ty: TensorType,
    /// The value, if the class is a small constant.
    pub value: Option<Tensor>,
    /// True if the class is computed from constants only (of any size).
    pub is_const: bool,
    /// Ops on the longest path from a leaf, through the class's shallowest
    /// e-node as known when the class or its node was added (leaves 0;
    /// merges keep the smaller depth without re-analysing parents). A class
    /// that depends on another is deeper than it; the epilogue rules use
    /// this (a heuristic) to skip operands computed from the product itself.
    pub depth: u32,
    /// True if the class has a constant f32 matrix `[K, N]` leaf with 2:4
    /// sparsity along K (see [`two_of_four`]), measured when the leaf is added.
    pub two_of_four: bool,
}

impl ClassData {
    /// The value as f64s if it is a small float or integer constant.
    pub fn values(&self) -> Option<Vec<f64>> {
        self.value.as_ref().map(Tensor::to_f64_vec)
    }

    /// True if the class is a constant whose every element is within
    /// `1e-6` (relative) of `v`.
    pub fn is_splat(&self, v: f64) -> bool {
        self.values().is_some_and(|xs| !xs.is_empty() && xs.iter().all(|&x| (x - v).abs() <= 1e-6 * v.abs().max(1.0)))
    }

    /// The single element of a one-element constant.
    pub fn scalar(&self) -> Option<f64> {
        self.values().filter(|v| v.len() == 1).map(|v| v[0])
    }
}

/// The analysis state: the leaf tables the e-nodes index, and bookkeeping.
#[derive(Default)]
pub struct NanoAnalysis {
    /// Types of the graph inputs (`input#N`).
    pub inputs: Vec<TensorType>,
    /// The constant table (`const#N`): the graph's constants, then folded ones.
    pub consts: Vec<Tensor>,
    /// Folded constants by content, so equal folds share one entry.
    folded: HashMap<(TensorType, Vec<u8>), usize>,
    /// The rule whose right-hand side is being added (names new e-nodes).
    pub(crate) rule: Option<&'static str>,
    /// The rule that first created each e-node (as it was added).
    pub(crate) created: HashMap<ENode, &'static str>,
    /// Constant folding on: new classes with a value get a constant leaf
    /// (off while converting, so conversion alone changes nothing).
    pub fold: bool,
    /// Number of classes that constant folding gave a constant.
    pub folds: usize,
    /// Internal inconsistencies (a bug if non-empty).
    pub errors: Vec<String>,
}

impl NanoAnalysis {
    /// The constant-table index for a new constant (folded or made by a
    /// rule), shared by equal values.
    pub(crate) fn folded_const(&mut self, t: Tensor) -> usize {
        let key = (t.ty().clone(), t.bytes().to_vec());
        if let Some(&i) = self.folded.get(&key) {
            return i;
        }
        self.consts.push(t);
        self.folded.insert(key, self.consts.len() - 1);
        self.consts.len() - 1
    }
}

/// True if `t` is an f32 matrix `[K, N]`, K a positive multiple of 4, with
/// at most two non-zeros in every four consecutive rows of each column (2:4
/// structured sparsity along the reduced dim of a matmul's weights).
pub fn two_of_four(t: &Tensor) -> bool {
    let [k, n] = *t.shape().dims() else { return false };
    if t.dtype() != DType::F32 || k == 0 || k % 4 != 0 {
        return false;
    }
    let bytes = t.bytes();
    let nonzero =
        |i: usize| bytes.get(4 * i..4 * i + 4).is_some_and(|b| b.iter().any(|&x| x != 0) && b != [0, 0, 0, 0x80]);
    (0..k / 4).all(|g| (0..n).all(|c| (0..4).filter(|&r| nonzero((4 * g + r) * n + c)).count() <= 2))
}

fn small(t: &Tensor) -> Option<Tensor> {
    (t.shape().numel() <= SMALL_CONST).then(|| t.clone())
}

fn placeholder() -> TensorType {
    TensorType::new(DType::F32, Vec::<usize>::new())
}

impl Analysis<ENode> for NanoAnalysis {
    type Data = ClassData;

    fn make(eg: &mut EGraph, enode: &ENode, _id: Id) -> ClassData {
        if let Some(rule) = eg.analysis.rule {
            eg.analysis.created.entry(enode.clone()).or_insert(rule);
        }
        let bad = |eg: &mut EGraph, msg: String| {
            eg.analysis.errors.push(msg);
            ClassData { ty: placeholder(), value: None, is_const: false, depth: 0, two_of_four: false }
        };
        let Some(info) = enode.info() else { return bad(eg, format!("wildcard `{enode}` added to the e-graph")) };
        match &info.kind {
            OpKind::Input(i) => match eg.analysis.inputs.get(*i) {
                Some(ty) => ClassData { ty: ty.clone(), value: None, is_const: false, depth: 0, two_of_four: false },
                None => bad(eg, format!("no graph input #{i}")),
            },
            OpKind::Const(i) => match eg.analysis.consts.get(*i) {
                Some(t) => ClassData {
                    ty: t.ty().clone(),
                    value: small(t),
                    is_const: true,
                    depth: 0,
                    two_of_four: two_of_four(t),
                },
                None => bad(eg, format!("no constant #{i}")),
            },
            OpKind::Op(cell) => {
                let Some((op, declared)) = cell.get() else {
                    return bad(eg, format!("op `{}` was added but cannot be built", info.key));
                };
                let kids: Vec<&ClassData> = enode.children().iter().map(|&c| &eg[c].data).collect();
                let tys: Vec<&TensorType> = kids.iter().map(|d| &d.ty).collect();
                let ty = match op.infer(&tys, declared.as_ref().unwrap_or(&placeholder())) {
                    Ok(ty) => ty,
                    Err(e) => return bad(eg, format!("`{enode}` does not type-check: {e}")),
                };
                let is_const = !kids.is_empty() && kids.iter().all(|d| d.is_const);
                let value = if !kids.is_empty() && ty.shape.numel() <= SMALL_CONST {
                    let vals: Option<Vec<&Tensor>> = kids.iter().map(|d| d.value.as_ref()).collect();
                    vals.and_then(|v| interp::eval_op(op, &v, &ty).ok()).filter(|t| t.ty() == &ty)
                } else {
                    None
                };
                let depth = kids.iter().map(|d| d.depth).max().unwrap_or(0).saturating_add(1);
                ClassData { ty, value, is_const, depth, two_of_four: false }
            }
        }
    }

    fn merge(&mut self, a: &mut ClassData, b: ClassData) -> DidMerge {
        if a.ty != b.ty {
            debug_assert!(false, "merging e-classes of types {} and {}", a.ty, b.ty);
            self.errors.push(format!("merged e-classes of types {} and {}", a.ty, b.ty));
        }
        let (mut to_a, mut to_b) = (false, false);
        match (&a.value, b.value) {
            (None, Some(v)) => {
                a.value = Some(v);
                to_a = true;
            }
            (Some(_), None) => to_b = true,
            _ => {}
        }
        if a.is_const != b.is_const {
            if a.is_const {
                to_b = true;
            } else {
                a.is_const = true;
                to_a = true;
            }
        }
        // The smaller depth, deliberately not reported as a change: parents
        // keep theirs (a shallower alternative deep in a residual stream
        // would otherwise re-analyse every layer above it on every merge).
        a.depth = a.depth.min(b.depth);
        if a.two_of_four != b.two_of_four {
            if a.two_of_four {
                to_b = true;
            } else {
                a.two_of_four = true;
                to_a = true;
            }
        }
        DidMerge(to_a, to_b)
    }

    /// Constant folding: a class with a value gets a constant leaf.
    fn modify(eg: &mut EGraph, id: Id) {
        if eg.analysis.fold {
            fold(eg, id);
        }
    }
}

/// Turns constant folding on and folds every class that has a value.
pub fn fold_all(eg: &mut EGraph) {
    eg.analysis.fold = true;
    let ids: Vec<Id> = eg.classes().filter(|c| c.data.value.is_some()).map(|c| c.id).collect();
    for id in ids {
        fold(eg, id);
    }
    eg.rebuild();
}

/// Gives class `id` a constant leaf if it has a value and none yet.
fn fold(eg: &mut EGraph, id: Id) {
    let Some(v) = eg[id].data.value.clone() else { return };
    if eg[id].nodes.iter().any(|n| n.family() == const_family()) {
        return;
    }
    let index = eg.analysis.folded_const(v);
    let saved = eg.analysis.rule.replace("const-fold");
    let leaf = eg.add(ENode::constant(index));
    eg.analysis.rule = saved;
    if eg.union(id, leaf) {
        eg.analysis.folds += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_inputs() -> (EGraph, Id, Id) {
        let mut a = NanoAnalysis::default();
        a.inputs = vec![TensorType::new(DType::F32, vec![2usize]), TensorType::new(DType::F32, vec![3usize])];
        let mut eg = EGraph::new(a);
        let x = eg.add(ENode::input(0));
        let y = eg.add(ENode::input(1));
        (eg, x, y)
    }

    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "merging e-classes of types f32[2] and f32[3]"))]
    fn merging_classes_of_different_types_is_a_bug() {
        let (mut eg, x, y) = two_inputs();
        eg.union(x, y);
        eg.rebuild();
        assert_eq!(eg.analysis.errors.len(), 1);
    }

    #[test]
    fn folding_evaluates_small_constants() {
        let mut eg = EGraph::new(NanoAnalysis::default());
        eg.analysis.consts = vec![Tensor::scalar(2.0f32), Tensor::scalar(3.0f32)];
        let (a, b) = (eg.add(ENode::constant(0)), eg.add(ENode::constant(1)));
        let f = TensorType::new(DType::F32, Vec::<usize>::new());
        let mul = ENode::op(&nanoc_ir::Op::Binary(nanoc_ir::BinaryOp::Mul), &[&f, &f], &f, vec![a, b]);
        let m = eg.add(mul);
        assert_eq!(eg[m].data.scalar(), Some(6.0));
        assert!(eg[m].data.is_const && eg[m].nodes.len() == 1, "folding is off until the stages run");
        fold_all(&mut eg);
        assert_eq!(eg[m].nodes.len(), 2);
        assert_eq!(eg.analysis.folds, 1);
    }
}
