//! Algebra: identities, commutativity, and cancelling movement ops.
//! (Constant folding is not a rule: the e-class analysis does it.)

use super::{Match, Rule, Term, rw, rw_ex, rw_fn};
use nanoc_ir::{BinaryOp, DType, Op, UnaryOp};

/// The algebra rules (canonicalise stage).
#[rustfmt::skip]
pub fn rules() -> Vec<Rule> {
    vec![
        // law: a + b = b + a
        rw("comm-add", "(add ?a ?b)", "(add ?b ?a)", "", "a:f32[2,3] b:f32[3]"),
        // law: a · b = b · a
        rw("comm-mul", "(mul ?a ?b)", "(mul ?b ?a)", "", "a:f32[2,3] b:f32[2,3]"),
        // law: x · 1 = x            (only where 1 does not broadcast x to a larger shape: the type check)
        rw("mul-one", "(mul ?x ?one)", "?x", "one=1", "x:f32[2,3]"),
        // law: x + 0 = x            (up to the sign of a zero x)
        rw("add-zero", "(add ?x ?zero)", "?x", "zero=0", "x:f32[2,3]"),
        // law: x − 0 = x
        rw("sub-zero", "(sub ?x ?zero)", "?x", "zero=0", "x:f32[2,3]"),
        // law: x / 1 = x
        rw("div-one", "(div ?x ?one)", "?x", "one=1", "x:f32[2,3]"),
        // law: −(−x) = x
        rw("neg-neg", "(neg (neg ?x))", "?x", "", "x:f32[2,3]"),
        // law: x² = x · x           (pow is exp∘log in kernels; the product is exact)
        rw("pow-two", "(pow ?x ?two)", "(mul ?x ?x)", "two=2", "x:f32[2,3]"),
        // law: transpose_q(transpose_p(x)) = transpose_{i ↦ p[q[i]]}(x), or x when that is the identity
        rw_fn("transpose-transpose", "(transpose (transpose ?x))", transpose_transpose, "", |e| { let x = e.input("f32[2,3,4]"); let t = e.op(tr(&[0, 2, 1]), &[x]); e.op(tr(&[1, 0, 2]), &[t]) }),
        // law: transpose_id(x) = x
        rw_fn("transpose-identity", "(transpose ?x)", transpose_identity, "", |e| { let x = e.input("f32[2,3]"); e.op(tr(&[0, 1]), &[x]) }),
        // law: reshape_s(reshape_r(x)) = reshape_s(x), or x when s is x's type  (row-major reinterpretation)
        rw_fn("reshape-reshape", "(reshape (reshape ?x))", reshape_reshape, "", |e| { let x = e.input("f32[2,6]"); let r = e.typed(Op::Reshape, &[x], "f32[3,4]"); e.typed(Op::Reshape, &[r], "f32[12]") }),
        // law: reshape to x's own type is x
        rw_ex("reshape-noop", "(reshape ?x)", "?x", "", |e| { let x = e.input("f32[2,3]"); e.typed(Op::Reshape, &[x], "f32[2,3]") }),
        // law: broadcast_s(broadcast_r(x)) = broadcast_s(x)   (broadcasting composes)
        rw_fn("broadcast-broadcast", "(broadcast (broadcast ?x))", broadcast_broadcast, "", |e| { let x = e.input("f32[3]"); let b = e.typed(Op::Broadcast, &[x], "f32[2,3]"); e.typed(Op::Broadcast, &[b], "f32[4,2,3]") }),
        // law: broadcast to x's own type is x
        rw_ex("broadcast-noop", "(broadcast ?x)", "?x", "", |e| { let x = e.input("f32[2,3]"); e.typed(Op::Broadcast, &[x], "f32[2,3]") }),
        // law: x / y = x · (1/y)    (floats; lets a target without division, an NPU with a reciprocal lookup table, run it: the cost model decides)
        rw_fn("div-reciprocal", "(div ?x ?y)", div_reciprocal, "", |e| { let x = e.input("f32[2,3]"); let y = e.input("f32[3]"); e.op(Op::Binary(BinaryOp::Div), &[x, y]) }),
        // law: cast to x's own dtype is x
        rw_ex("cast-noop", "(cast ?x)", "?x", "", |e| { let x = e.input("f32[2,3]"); e.op(Op::Cast { to: DType::F32 }, &[x]) }),
    ]
}

fn tr(perm: &[usize]) -> Op {
    Op::Transpose { perm: perm.to_vec() }
}

/// Composes every transpose-of-transpose of `?x` in the matched class.
fn transpose_transpose(m: &Match<'_>) -> Vec<Term> {
    let Some(x) = m.var("?x") else { return Vec::new() };
    let mut out = Vec::new();
    for (outer, inner) in m.ops(m.eclass, "transpose") {
        let Op::Transpose { perm: q } = outer else { continue };
        for (op, kids) in m.ops(inner[0], "transpose") {
            let Op::Transpose { perm: p } = op else { continue };
            if kids[0] != x || p.len() != q.len() {
                continue;
            }
            let perm: Vec<usize> = q.iter().map(|&i| p[i]).collect();
            if perm.iter().enumerate().all(|(i, &d)| i == d) {
                out.push(Term::Class(x));
            } else {
                out.push(Term::node(Op::Transpose { perm }, vec![Term::Class(x)]));
            }
        }
    }
    out
}

/// `?x` if the class holds an identity transpose of it.
fn transpose_identity(m: &Match<'_>) -> Vec<Term> {
    let Some(x) = m.var("?x") else { return Vec::new() };
    let identity = m.ops(m.eclass, "transpose").into_iter().any(|(op, kids)| {
        matches!(op, Op::Transpose { perm } if perm.iter().enumerate().all(|(i, &d)| i == d)) && kids[0] == x
    });
    if identity { vec![Term::Class(x)] } else { Vec::new() }
}

/// `?x · reciprocal(?y)` for a float division.
fn div_reciprocal(m: &Match<'_>) -> Vec<Term> {
    let (Some(x), Some(y)) = (m.var("?x"), m.var("?y")) else { return Vec::new() };
    if !m.data(y).ty.dtype.is_float() {
        return Vec::new();
    }
    let reciprocal = Term::node(Op::Unary(UnaryOp::Reciprocal), vec![Term::Class(y)]);
    vec![Term::node(Op::Binary(BinaryOp::Mul), vec![Term::Class(x), reciprocal])]
}

/// One reshape from `?x` straight to the matched class's type.
fn reshape_reshape(m: &Match<'_>) -> Vec<Term> {
    let Some(x) = m.var("?x") else { return Vec::new() };
    let ty = m.data(m.eclass).ty.clone();
    if m.data(x).ty == ty {
        return vec![Term::Class(x)];
    }
    vec![Term::Node { op: Op::Reshape, declared: Some(ty), args: vec![Term::Class(x)] }]
}

/// One broadcast from `?x` straight to the matched class's type.
fn broadcast_broadcast(m: &Match<'_>) -> Vec<Term> {
    let Some(x) = m.var("?x") else { return Vec::new() };
    let ty = m.data(m.eclass).ty.clone();
    vec![Term::Node { op: Op::Broadcast, declared: Some(ty), args: vec![Term::Class(x)] }]
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_rule_builds_and_holds() {
        super::super::check::check_table(&super::rules());
    }
}
