//! The verifier: arity, dtypes, shapes, names and acyclicity, every problem
//! reported with its node name.

use crate::{Graph, IrError, Op, Result, TensorType};
use std::collections::HashSet;

/// Checks `g`; returns all problems at once in [`IrError::Verify`].
pub fn verify(g: &Graph) -> Result<()> {
    let mut problems = Vec::new();
    if let Err(e) = g.topo_order() {
        problems.push(e.to_string());
    }
    let mut names = HashSet::new();
    for id in g.node_ids() {
        let n = g.node(id);
        if !names.insert(n.name.as_str()) {
            problems.push(format!("node `{}`: duplicate node name", n.name));
        }
        if n.ty.shape.checked_numel().and_then(|e| e.checked_mul(n.ty.dtype.size_bytes())).is_none() {
            problems.push(format!("node `{}`: type {} is too large", n.name, n.ty));
            continue;
        }
        let args = g.args(id);
        let tys: Vec<&TensorType> = args.iter().map(|&a| &g.node(a).ty).collect();
        match n.op.infer(&tys, &n.ty) {
            Ok(t) if t == n.ty => {}
            Ok(t) => problems.push(format!(
                "node `{}` ({}): declared type {} but operands give {t}",
                n.name,
                n.op.name(),
                n.ty
            )),
            Err(msg) => problems.push(format!("node `{}` ({}): {msg}", n.name, n.op.name())),
        }
        if matches!(n.op, Op::Input) && !g.inputs().contains(&id) {
            problems.push(format!("node `{}`: input node is not a graph input", n.name));
        }
    }
    if g.outputs().is_empty() {
        problems.push("graph has no outputs".into());
    }
    let mut out_names = HashSet::new();
    for (name, _) in g.outputs() {
        if !out_names.insert(name) {
            problems.push(format!("output `{name}`: duplicate output name"));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(IrError::Verify { graph: g.name.clone(), problems }) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BinaryOp, DType, Op};

    #[test]
    fn reports_every_problem() {
        let mut g = Graph::new("bad");
        let a = g.add_input("a", TensorType::new(DType::F32, vec![2, 3]));
        let b = g.add_input("b", TensorType::new(DType::F32, vec![4]));
        let c = g.add_node("c", Op::Binary(BinaryOp::Add), &[a, b], TensorType::new(DType::F32, vec![2, 3]));
        let d = g.add_node("d", Op::MatMul, &[a], TensorType::new(DType::F32, vec![2, 3]));
        g.add_output("c", c);
        g.add_output("d", d);
        let msg = verify(&g).unwrap_err().to_string();
        assert!(msg.contains("node `c` (add): shapes [2,3] and [4] do not broadcast"), "{msg}");
        assert!(msg.contains("node `d` (matmul): matmul takes 2 operand(s), got 1"), "{msg}");
    }
}
