//! Normalisation: LayerNorm and softmax from their decompositions.
//!
//! The patterns fix the shape of the decomposition; the Rust right-hand
//! sides check what a pattern cannot say: the mean is over trailing axes
//! with kept dims, both means reduce the same axes, the variance squares
//! the same centred value, ε is a scalar, the softmax reductions use one
//! axis. Scale and bias must broadcast to the normalised dims (the type
//! check of `layer_norm`).

use super::{Ex, Match, Rule, Term, rw_fn};
use egg::Id;
use nanoc_ir::{BinaryOp, NodeId, Op, ReduceKind, Tensor, UnaryOp};

/// The normalisation rules (fusion stage).
#[rustfmt::skip]
pub fn rules() -> Vec<Rule> {
    vec![
        // law: (x − mean(x)) / √(mean((x − mean(x))²) + ε) · γ + β = layer_norm(x, γ, β)   (means over dims axis..)
        rw_fn("layer-norm", "(add (mul (div (sub ?x ?mean) (sqrt (add ?var ?eps))) ?scale) ?bias)", layer_norm, "", |e| ln_example(e, true, true)),
        // law: (x − mean(x)) / √(mean((x − mean(x))²) + ε) · γ = layer_norm(x, γ)
        rw_fn("layer-norm-scale", "(mul (div (sub ?x ?mean) (sqrt (add ?var ?eps))) ?scale)", layer_norm, "", |e| ln_example(e, true, false)),
        // law: (x − mean(x)) / √(mean((x − mean(x))²) + ε) = layer_norm(x, 1)
        rw_fn("layer-norm-plain", "(div (sub ?x ?mean) (sqrt (add ?var ?eps)))", layer_norm, "", |e| ln_example(e, false, false)),
        // law: exp(x − max(x)) / Σ exp(x − max(x)) = softmax(x)   (max and sum over one axis, dims kept)
        rw_fn("softmax", "(div (exp (sub ?x ?max)) ?sum)", softmax, "", softmax_example),
    ]
}

/// The axes of a `reduce` op of `kind` with kept dims over `?x`'s class.
fn reduce_axes(m: &Match<'_>, class: Id, kind: ReduceKind, x: Id) -> Vec<Vec<usize>> {
    m.ops(class, reduce_name(kind))
        .into_iter()
        .filter_map(|(op, kids)| match op {
            Op::Reduce { kind: k, axes, keep_dims: true } if *k == kind && kids[0] == x => Some(axes.clone()),
            _ => None,
        })
        .collect()
}

fn reduce_name(kind: ReduceKind) -> &'static str {
    Op::Reduce { kind, axes: Vec::new(), keep_dims: true }.name()
}

/// LayerNorm over the trailing dims, with scale/bias when the pattern has them.
fn layer_norm(m: &Match<'_>) -> Vec<Term> {
    let (Some(x), Some(mean), Some(var), Some(eps)) = (m.var("?x"), m.var("?mean"), m.var("?var"), m.var("?eps"))
    else {
        return Vec::new();
    };
    let Some(epsilon) = m.data(eps).scalar() else { return Vec::new() };
    let xt = &m.data(x).ty;
    if !xt.dtype.is_float() {
        return Vec::new();
    }
    let rank = xt.shape.rank();
    let Some(centred) = m.lookup(&Op::Binary(BinaryOp::Sub), &[x, mean]) else { return Vec::new() };
    let mut out = Vec::new();
    for axes in reduce_axes(m, mean, ReduceKind::Mean, x) {
        let Some(&axis) = axes.first() else { continue };
        if axes != (axis..rank).collect::<Vec<_>>() {
            continue;
        }
        // The variance: mean over the same axes of (x − mean)² or (x − mean)·(x − mean).
        let squares: Vec<_> = m
            .ops(var, "reduce_mean")
            .into_iter()
            .filter(|(op, _)| matches!(op, Op::Reduce { axes: a, keep_dims: true, .. } if *a == axes))
            .map(|(_, kids)| kids[0])
            .collect();
        let squared = squares.iter().any(|&sq| {
            m.ops(sq, "pow").iter().any(|(_, k)| k[0] == centred && m.data(k[1]).is_splat(2.0))
                || m.ops(sq, "mul").iter().any(|(_, k)| k[0] == centred && k[1] == centred)
        });
        if !squared {
            continue;
        }
        let op = Op::LayerNorm { axis, epsilon: epsilon as f32 };
        let mut args = vec![Term::Class(x)];
        match (m.var("?scale"), m.var("?bias")) {
            (Some(s), Some(b)) => args.extend([Term::Class(s), Term::Class(b)]),
            (Some(s), None) => args.push(Term::Class(s)),
            _ => {
                let dims = xt.shape.dims()[axis..].to_vec();
                let n = dims.iter().product();
                match Tensor::from_vec(dims, vec![1.0f32; n]).and_then(|t| cast_like(t, xt.dtype)) {
                    Ok(ones) => args.push(Term::Const(ones)),
                    Err(_) => continue,
                }
            }
        }
        out.push(Term::node(op, args));
    }
    out
}

/// `t` (f32) as `dtype` (only f32 is supported here).
fn cast_like(t: Tensor, dtype: nanoc_ir::DType) -> nanoc_ir::Result<Tensor> {
    if dtype == nanoc_ir::DType::F32 {
        Ok(t)
    } else {
        Err(nanoc_ir::IrError::Invalid(format!("layer_norm ones of {dtype}")))
    }
}

/// Softmax along the one axis both reductions use.
fn softmax(m: &Match<'_>) -> Vec<Term> {
    let (Some(x), Some(max), Some(sum)) = (m.var("?x"), m.var("?max"), m.var("?sum")) else { return Vec::new() };
    let Some(centred) = m.lookup(&Op::Binary(BinaryOp::Sub), &[x, max]) else { return Vec::new() };
    let Some(exp) = m.lookup(&Op::Unary(UnaryOp::Exp), &[centred]) else { return Vec::new() };
    let mut out = Vec::new();
    for axes in reduce_axes(m, max, ReduceKind::Max, x) {
        if axes.len() == 1 && reduce_axes(m, sum, ReduceKind::Sum, exp).contains(&axes) {
            out.push(Term::node(Op::Softmax { axis: axes[0] }, vec![Term::Class(x)]));
        }
    }
    out
}

fn reduce(kind: ReduceKind, axes: &[usize]) -> Op {
    Op::Reduce { kind, axes: axes.to_vec(), keep_dims: true }
}

fn bin(b: BinaryOp) -> Op {
    Op::Binary(b)
}

/// A decomposed LayerNorm over the last dim of f32[2,3,8].
fn ln_example(e: &mut Ex, scale: bool, bias: bool) -> NodeId {
    let x = e.input("f32[2,3,8]");
    let mean = e.op(reduce(ReduceKind::Mean, &[2]), &[x]);
    let d = e.op(bin(BinaryOp::Sub), &[x, mean]);
    let two = e.splat("f32[]", 2.0);
    let sq = e.op(bin(BinaryOp::Pow), &[d, two]);
    let var = e.op(reduce(ReduceKind::Mean, &[2]), &[sq]);
    let eps = e.splat("f32[]", 1e-5);
    let ve = e.op(bin(BinaryOp::Add), &[var, eps]);
    let sd = e.op(Op::Unary(UnaryOp::Sqrt), &[ve]);
    let mut y = e.op(bin(BinaryOp::Div), &[d, sd]);
    if scale {
        let g = e.input("f32[8]");
        y = e.op(bin(BinaryOp::Mul), &[y, g]);
    }
    if bias {
        let b = e.input("f32[8]");
        y = e.op(bin(BinaryOp::Add), &[y, b]);
    }
    y
}

/// A decomposed softmax over the last dim of f32[2,3,8].
fn softmax_example(e: &mut Ex) -> NodeId {
    let x = e.input("f32[2,3,8]");
    let mx = e.op(reduce(ReduceKind::Max, &[2]), &[x]);
    let d = e.op(bin(BinaryOp::Sub), &[x, mx]);
    let ex = e.op(Op::Unary(UnaryOp::Exp), &[d]);
    let s = e.op(reduce(ReduceKind::Sum, &[2]), &[ex]);
    e.op(bin(BinaryOp::Div), &[ex, s])
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_rule_builds_and_holds() {
        super::super::check::check_table(&super::rules());
    }
}
