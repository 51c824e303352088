//! Half-precision models computed in f32.
//!
//! Every f16/bf16 value of the graph becomes f32: half constants are
//! widened at compile time, half inputs are cast to f32 where they enter,
//! half outputs are cast back where they leave. The CPU backend then needs
//! only the half <-> f32 casts; results are at least as accurate as
//! computing in half (onnxruntime rounds to half after every op).

use nanoc_ir::{DType, Graph, NodeId, Op, Result, Tensor, TensorType, verify};
use std::collections::HashMap;

fn is_half(d: DType) -> bool {
    matches!(d, DType::F16 | DType::BF16)
}

fn widened(t: &TensorType) -> TensorType {
    if is_half(t.dtype) { TensorType::new(DType::F32, t.shape.clone()) } else { t.clone() }
}

/// True if any value of `g` is f16 or bf16.
pub fn has_half(g: &Graph) -> bool {
    g.node_ids().into_iter().any(|id| is_half(g.node(id).ty.dtype))
}

/// Rewrites `g` to compute in f32 (see the module docs); graphs without
/// half values are returned unchanged. Inputs and outputs keep their names
/// and types.
pub fn promote_half(g: Graph) -> Result<Graph> {
    if !has_half(&g) {
        return Ok(g);
    }
    let mut out = Graph::new(g.name.clone());
    let mut map: HashMap<NodeId, NodeId> = HashMap::new();
    for &id in g.inputs() {
        let n = g.node(id);
        let new = out.add_input(n.name.clone(), n.ty.clone());
        let new = if is_half(n.ty.dtype) {
            out.add_node(format!("{}/to_f32", n.name), Op::Cast { to: DType::F32 }, &[new], widened(&n.ty))
        } else {
            new
        };
        map.insert(id, new);
    }
    for id in g.topo_order()? {
        let n = g.node(id);
        let new = match &n.op {
            Op::Input => continue,
            Op::Const(t) if is_half(t.dtype()) => {
                let v: Vec<f32> = t.to_f64_vec().into_iter().map(|x| x as f32).collect();
                out.add_const(n.name.clone(), Tensor::from_vec(t.shape().clone(), v)?)
            }
            Op::Const(t) => out.add_const(n.name.clone(), t.clone()),
            op => {
                let op = match op {
                    Op::Cast { to } if is_half(*to) => Op::Cast { to: DType::F32 },
                    other => other.clone(),
                };
                let args: Vec<NodeId> = g.args(id).iter().map(|a| map[a]).collect();
                out.add_node(n.name.clone(), op, &args, widened(&n.ty))
            }
        };
        map.insert(id, new);
    }
    for (name, id) in g.outputs() {
        let ty = &g.node(*id).ty;
        let new = if is_half(ty.dtype) {
            out.add_node(format!("{name}/to_{}", ty.dtype), Op::Cast { to: ty.dtype }, &[map[id]], ty.clone())
        } else {
            map[id]
        };
        out.add_output(name.clone(), new);
    }
    verify::verify(&out)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use nanoc_ir::{BinaryOp, interp};

    #[test]
    fn f16_graph_computes_in_f32_with_casts_at_the_edges() {
        let mut g = Graph::new("h");
        let x = g.add_input("x", TensorType::new(DType::F16, vec![3]));
        let w = g.add_const("w", Tensor::from_vec(vec![3], vec![half::f16::from_f32(0.5); 3]).unwrap());
        let y = g.add_op("y", Op::Binary(BinaryOp::Mul), &[x, w]).unwrap();
        g.add_output("y", y);
        let p = promote_half(g.clone()).unwrap();
        assert_eq!(p.node(p.inputs()[0]).ty.dtype, DType::F16);
        let (_, out) = &p.outputs()[0];
        assert_eq!(p.node(*out).ty.dtype, DType::F16);
        assert!(p.node_ids().iter().filter(|&&id| p.node(id).name == "y").all(|&id| p.node(id).ty.dtype == DType::F32));
        let xs = Tensor::from_vec(
            vec![3],
            vec![half::f16::from_f32(1.0), half::f16::from_f32(-3.0), half::f16::from_f32(0.25)],
        )
        .unwrap();
        let a = interp::run(&g, std::slice::from_ref(&xs)).unwrap();
        let b = interp::run(&p, &[xs]).unwrap();
        assert_eq!(a[0].to_f64_vec(), b[0].to_f64_vec());
        assert_eq!(b[0].to_f64_vec(), vec![0.5, -1.5, 0.125]);
    }
}
