//! Normalisation: LayerNorm, RMSNorm and softmax from their decompositions.
//!
//! The patterns fix the shape of the decomposition; the Rust right-hand
//! sides check what a pattern cannot say: the mean is over trailing axes
//! with kept dims, both means reduce the same axes, the variance squares
//! the same centred value, ε is a scalar, the softmax reductions use one
//! axis. Scale and bias must broadcast to the normalised dims (the type
//! check of `layer_norm` and `rms_norm`).
//!
//! RMSNorm is matched in two steps: the core `x / √(mean(x²) + ε)` in the
//! forms exporters write (HF Llama's `x * rsqrt(...)`, exported as
//! Reciprocal∘Sqrt; `x / sqrt(...)`; `x * (1 / sqrt(...))`; x² as `x · x`
//! or `pow(x, 2)`, which canonicalise turns into `x · x`) becomes
//! `rms_norm(x)`, and a weight multiplying an unscaled `rms_norm` joins it.
//! Mixed-precision exports wrap the f32 core in Casts (`x.to(float32)` …
//! `.to(input_dtype)`): the core fuses between them; identity casts of an
//! f32 model are removed by canonicalise (`cast-noop`).

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
        // law: layer_norm(x, γ, β) = (x − mean(x)) · 1/√(mean((x − mean(x))²) + ε) · γ + β   (for targets without a native LayerNorm: the cost model decides)
        rw_fn("layer-norm-decompose", "(layer_norm ?x ?scale ?bias)", layer_norm_decompose, "", |e| ln_fused_example(e, 3)),
        // law: layer_norm(x, γ) = (x − mean(x)) · 1/√(mean((x − mean(x))²) + ε) · γ
        rw_fn("layer-norm-decompose-scale", "(layer_norm ?x ?scale)", layer_norm_decompose, "", |e| ln_fused_example(e, 2)),
        // law: x / √(mean(x²) + ε) = rms_norm(x)                          (mean over dims axis..)
        rw_fn("rms-norm-div", "(div ?x (sqrt (add ?ms ?eps)))", rms_norm, "", |e| rms_example(e, RmsForm::Div)),
        // law: x · 1/√(mean(x²) + ε) = rms_norm(x)                        (HF Llama `x * torch.rsqrt(var + eps)`)
        rw_fn("rms-norm-rsqrt", "(mul ?x (reciprocal (sqrt (add ?ms ?eps))))", rms_norm, "", |e| rms_example(e, RmsForm::Rsqrt)),
        // law: x · (1 / √(mean(x²) + ε)) = rms_norm(x)
        rw_fn("rms-norm-one-div", "(mul ?x (div ?one (sqrt (add ?ms ?eps))))", rms_norm, "one=1", |e| rms_example(e, RmsForm::OneDiv)),
        // law: rms_norm(x) · γ = rms_norm(x, γ)                           (γ broadcasts to the normalised dims)
        rw_fn("rms-norm-scale", "(mul (rms_norm ?x) ?w)", rms_norm_scale, "", rms_scale_example),
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

/// The decomposition of every f32 `layer_norm` in the matched class over
/// exactly the pattern's operands, with the division as a multiply by a
/// reciprocal (the form NPUs with a reciprocal lookup table run).
fn layer_norm_decompose(m: &Match<'_>) -> Vec<Term> {
    let Some(x) = m.var("?x") else { return Vec::new() };
    let operands: Vec<Id> = [Some(x), m.var("?scale"), m.var("?bias")].into_iter().flatten().collect();
    let xt = &m.data(x).ty;
    if xt.dtype != nanoc_ir::DType::F32 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (op, kids) in m.ops(m.eclass, "layer_norm") {
        let Op::LayerNorm { axis, epsilon } = op else { continue };
        if kids != operands {
            continue;
        }
        let axes: Vec<usize> = (*axis..xt.shape.rank()).collect();
        let mean = Term::node(reduce(ReduceKind::Mean, &axes), vec![Term::Class(x)]);
        let centred = Term::node(bin(BinaryOp::Sub), vec![Term::Class(x), mean]);
        let square = Term::node(bin(BinaryOp::Mul), vec![centred.clone(), centred.clone()]);
        let var = Term::node(reduce(ReduceKind::Mean, &axes), vec![square]);
        let var_eps = Term::node(bin(BinaryOp::Add), vec![var, Term::Const(Tensor::scalar(*epsilon))]);
        let sd = Term::node(Op::Unary(UnaryOp::Sqrt), vec![var_eps]);
        let inv = Term::node(Op::Unary(UnaryOp::Reciprocal), vec![sd]);
        let mut y = Term::node(bin(BinaryOp::Mul), vec![centred, inv]);
        if let Some(&s) = kids.get(1) {
            y = Term::node(bin(BinaryOp::Mul), vec![y, Term::Class(s)]);
        }
        if let Some(&b) = kids.get(2) {
            y = Term::node(bin(BinaryOp::Add), vec![y, Term::Class(b)]);
        }
        out.push(y);
    }
    out
}

/// A fused `layer_norm` over the last dim of f32[2,3,8] with `operands`
/// operands (x, scale, then bias).
fn ln_fused_example(e: &mut Ex, operands: usize) -> NodeId {
    let mut args = vec![e.input("f32[2,3,8]")];
    for _ in 1..operands {
        args.push(e.input("f32[8]"));
    }
    e.op(Op::LayerNorm { axis: 2, epsilon: 1e-5 }, &args)
}

/// `rms_norm(x)` when `?ms` is the mean of `x · x` (or `x²`) over x's
/// trailing dims with kept dims and `?eps` a scalar.
fn rms_norm(m: &Match<'_>) -> Vec<Term> {
    let (Some(x), Some(ms), Some(eps)) = (m.var("?x"), m.var("?ms"), m.var("?eps")) else { return Vec::new() };
    let Some(epsilon) = m.data(eps).scalar() else { return Vec::new() };
    let xt = &m.data(x).ty;
    if !xt.dtype.is_float() {
        return Vec::new();
    }
    let rank = xt.shape.rank();
    let mut out = Vec::new();
    for (op, kids) in m.ops(ms, "reduce_mean") {
        let Op::Reduce { axes, keep_dims: true, .. } = op else { continue };
        let Some(&axis) = axes.first() else { continue };
        if *axes != (axis..rank).collect::<Vec<_>>() {
            continue;
        }
        let sq = kids[0];
        let squares_x = m.ops(sq, "mul").iter().any(|(_, k)| k[0] == x && k[1] == x)
            || m.ops(sq, "pow").iter().any(|(_, k)| k[0] == x && m.data(k[1]).is_splat(2.0));
        if squares_x {
            out.push(Term::node(Op::RmsNorm { axis, epsilon: epsilon as f32 }, vec![Term::Class(x)]));
        }
    }
    out
}

/// `rms_norm(x, w)` from `rms_norm(x) · w` (the type check rejects a `w`
/// that does not broadcast to the normalised dims).
fn rms_norm_scale(m: &Match<'_>) -> Vec<Term> {
    let (Some(x), Some(w)) = (m.var("?x"), m.var("?w")) else { return Vec::new() };
    let mut out = Vec::new();
    for (mul_op, mul_kids) in m.ops(m.eclass, "mul") {
        if *mul_op != Op::Binary(BinaryOp::Mul) || mul_kids[1] != w {
            continue;
        }
        for (op, kids) in m.ops(mul_kids[0], "rms_norm") {
            if kids.len() == 1 && kids[0] == x {
                out.push(Term::node(op.clone(), vec![Term::Class(x), Term::Class(w)]));
            }
        }
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

/// How an example writes `1 / √(mean(x²) + ε)`.
#[derive(Clone, Copy)]
enum RmsForm {
    /// `x / sqrt(..)`.
    Div,
    /// `x * reciprocal(sqrt(..))`.
    Rsqrt,
    /// `x * (1 / sqrt(..))`.
    OneDiv,
}

/// A decomposed RMSNorm over the last two dims of f32[3,5,7] (odd sizes).
fn rms_example(e: &mut Ex, form: RmsForm) -> NodeId {
    let x = e.input("f32[3,5,7]");
    let sq = e.op(bin(BinaryOp::Mul), &[x, x]);
    let ms = e.op(reduce(ReduceKind::Mean, &[1, 2]), &[sq]);
    let eps = e.splat("f32[]", 1e-6);
    let v = e.op(bin(BinaryOp::Add), &[ms, eps]);
    let r = e.op(Op::Unary(UnaryOp::Sqrt), &[v]);
    match form {
        RmsForm::Div => e.op(bin(BinaryOp::Div), &[x, r]),
        RmsForm::Rsqrt => {
            let inv = e.op(Op::Unary(UnaryOp::Reciprocal), &[r]);
            e.op(bin(BinaryOp::Mul), &[x, inv])
        }
        RmsForm::OneDiv => {
            let one = e.splat("f32[]", 1.0);
            let inv = e.op(bin(BinaryOp::Div), &[one, r]);
            e.op(bin(BinaryOp::Mul), &[x, inv])
        }
    }
}

/// An unscaled `rms_norm` times a weight of its normalised dims.
fn rms_scale_example(e: &mut Ex) -> NodeId {
    let x = e.input("f32[3,5,7]");
    let n = e.op(Op::RmsNorm { axis: 1, epsilon: 1e-6 }, &[x]);
    let w = e.input("f32[5,7]");
    e.op(bin(BinaryOp::Mul), &[n, w])
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
