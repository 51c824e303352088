//! Quantisation: the QDQ form the ONNX importer produces (DequantizeLinear
//! → MatMul, optionally → QuantizeLinear; QLinearMatMul and
//! DynamicQuantizeLinear import into the same nodes) becomes one `qmatmul`
//! that reads the quantised operands directly.
//!
//! Constant weights stay quantised in the imported graph (the importer does
//! not fold `dequantize` of constants), so the patterns see them. The
//! small canonical rules first give every `dequantize`/`quantize` an explicit
//! zero point and move a transpose (Gemm's `transB`) from the dequantised
//! weights onto the quantised constant, which is transposed at compile time;
//! the `qmatmul` rules then only need the one form. `qmatmul` takes `b` as
//! `[K, N]` with per-tensor or per-column parameters and a per-tensor `a`;
//! the Rust right-hand sides check what the type check cannot see: the
//! dequantize's axis (a `[N]` scale on a square matrix could be per row).
//!
//! Blocked weights (the decomposed form of MatMulNBits, or ONNX's blocked
//! DequantizeLinear on `[K, N]` weights) with constant values and zero
//! points become `qmatmul_block`, packed at compile time: 4 bits when every
//! value fits, else 8.

use super::{Ex, Match, Rule, Term, rw_fn};
use egg::Id;
use nanoc_ir::{DType, NodeId, Op, Tensor, interp};

/// The quantisation rules (quantisation stage).
#[rustfmt::skip]
pub fn rules() -> Vec<Rule> {
    vec![
        // law: dequantize(x, s) = dequantize(x, s, 0)            (a missing zero point is zero)
        rw_fn("dequantize-zero-point", "(dequantize ?x ?s)", explicit_zero_point, "", |e| { let x = e.input("i8[3,4]"); let s = e.splat("f32[]", 0.1); e.op(dq(0), &[x, s]) }),
        // law: quantize(x, s) = quantize(x, s, 0)
        rw_fn("quantize-zero-point", "(quantize ?x ?s)", explicit_zero_point, "", |e| { let x = e.input("f32[3,4]"); let s = e.splat("f32[4]", 0.02); e.op(Op::Quantize { axis: 1, block: 0, to: DType::I8 }, &[x, s]) }),
        // law: transpose_p(c) = c transposed at compile time   (i8/u8 constants only: quantised weights)
        rw_fn("transpose-quantised-const", "(transpose ?c)", transpose_const, "", |e| { let c = e.values("i8[2,3]", &[1.0, -2.0, 3.0, -4.0, 5.0, -6.0]); e.op(Op::Transpose { perm: vec![1, 0] }, &[c]) }),
        // law: transpose_p(dequantize_axis(q, s, z)) = dequantize_{p⁻¹(axis)}(transpose_p(q), s, z)   (per tensor or per axis)
        rw_fn("transpose-dequantize", "(transpose (dequantize ?q ?s ?z))", transpose_dequantize, "", |e| { let q = e.input("i8[5,3]"); let (s, z) = column_params(e, 5, DType::I8); let d = e.op(dq(0), &[q, s, z]); e.op(Op::Transpose { perm: vec![1, 0] }, &[d]) }),
        // law: a · dequantize(b, s, z) = qmatmul(a, b, s, z)      (a f32; b [K, N]; s, z per tensor or per column)
        rw_fn("qmatmul-weights", "(matmul ?a (dequantize ?b ?sb ?zb))", qmatmul_weights, "", |e| { let a = e.input("f32[7,33]"); let b = e.input("u8[33,5]"); let (s, z) = column_params(e, 5, DType::U8); let w = e.op(dq(1), &[b, s, z]); e.op(Op::MatMul, &[a, w]) }),
        // law: dequantize(a, sa, za) · dequantize(b, sb, zb) = qmatmul(a, sa, za, b, sb, zb)   (Σ (a − za)(b − zb) exact in i32; a per tensor)
        rw_fn("qmatmul-integer", "(matmul (dequantize ?a ?sa ?za) (dequantize ?b ?sb ?zb))", qmatmul_integer, "", integer_example),
        // law: quantize(qmatmul(a, sa, za, b, sb, zb), sy, zy) = qmatmul(a, sa, za, b, sb, zb, sy, zy)   (sy, zy per tensor)
        rw_fn("qmatmul-requantize", "(quantize (qmatmul ?a ?sa ?za ?b ?sb ?zb) ?sy ?zy)", qmatmul_requantize, "", requantize_example),
        // law: a · transpose(dequantize_blocks(q, s, z)) = qmatmul_block(a, pack(q), s, z)   (q, z constant [N, K] and [N, K/block]; 4 bits if every value < 16, else 8; i8 offset by 128)
        rw_fn("qmatmul-block", "(matmul ?a (transpose (dequantize ?q ?s ?z)))", qmatmul_block_nk, "", |e| block_example(e, true)),
        // law: a · dequantize_blocks(q, s, z) = qmatmul_block(a, pack(qᵀ), sᵀ, zᵀ)   (q [K, N] blocked along K; q, s, z constant)
        rw_fn("qmatmul-block-kn", "(matmul ?a (dequantize ?q ?s ?z))", qmatmul_block_kn, "", |e| block_example(e, false)),
    ]
}

fn dq(axis: usize) -> Op {
    Op::Dequantize { axis, block: 0 }
}

/// The matched class's `dequantize`/`quantize` of `?x` with scale `?s`, plus
/// an all-zero zero point of the quantised dtype shaped like the scale.
fn explicit_zero_point(m: &Match<'_>) -> Vec<Term> {
    let (Some(x), Some(s)) = (m.var("?x"), m.var("?s")) else { return Vec::new() };
    let scale = &m.data(s).ty;
    let mut out = Vec::new();
    for family in ["dequantize", "quantize"] {
        for (op, kids) in m.ops(m.eclass, family) {
            if kids != [x, s] {
                continue;
            }
            let dtype = match op {
                Op::Quantize { to, .. } => *to,
                _ => m.data(x).ty.dtype,
            };
            let bytes = vec![0u8; scale.shape.numel() * dtype.size_bytes()];
            let ty = nanoc_ir::TensorType::new(dtype, scale.shape.clone());
            let Ok(zeros) = Tensor::from_bytes(ty, nanoc_ir::Bytes::from_vec(bytes)) else { continue };
            out.push(Term::node(op.clone(), vec![Term::Class(x), Term::Class(s), Term::Const(zeros)]));
        }
    }
    out
}

/// A transpose of an i8/u8 constant, evaluated.
fn transpose_const(m: &Match<'_>) -> Vec<Term> {
    let Some(c) = m.var("?c") else { return Vec::new() };
    let Some(t) = m.const_tensor(c) else { return Vec::new() };
    if !matches!(t.dtype(), DType::I8 | DType::U8) {
        return Vec::new();
    }
    let ty = &m.data(m.eclass).ty;
    m.ops(m.eclass, "transpose")
        .into_iter()
        .filter(|(_, kids)| kids[0] == c)
        .filter_map(|(op, _)| interp::eval_op(op, &[t], ty).ok())
        .map(Term::Const)
        .take(1)
        .collect()
}

/// The `dequantize` ops over exactly `kids` in class `c`.
fn dequantizes<'a>(m: &'a Match<'_>, c: Id, kids: &[Id]) -> impl Iterator<Item = &'static Op> + 'a {
    let kids = kids.to_vec();
    m.ops(c, "dequantize").into_iter().filter(move |(_, k)| *k == kids).map(|(op, _)| op)
}

/// Dequantize (per tensor or per axis) moved below the transpose.
fn transpose_dequantize(m: &Match<'_>) -> Vec<Term> {
    let (Some(q), Some(s), Some(z)) = (m.var("?q"), m.var("?s"), m.var("?z")) else { return Vec::new() };
    let per_tensor = m.data(s).ty.shape.numel() == 1;
    let mut out = Vec::new();
    for (top, tkids) in m.ops(m.eclass, "transpose") {
        let Op::Transpose { perm } = top else { continue };
        for op in dequantizes(m, tkids[0], &[q, s, z]) {
            let Op::Dequantize { axis, block: 0 } = op else { continue };
            let moved = if per_tensor { Some(0) } else { perm.iter().position(|p| p == axis) };
            let Some(axis) = moved else { continue };
            let tq = Term::node(top.clone(), vec![Term::Class(q)]);
            out.push(Term::node(dq(axis), vec![tq, Term::Class(s), Term::Class(z)]));
        }
    }
    out
}

/// True if `op` (a dequantize of a `[K, N]` matrix with scale `s`) is per
/// tensor or per column.
fn per_column(m: &Match<'_>, op: &Op, s: Id) -> bool {
    m.data(s).ty.shape.numel() == 1 || matches!(op, Op::Dequantize { axis: 1, block: 0 })
}

/// The second operands of the matched matmuls whose first operand is `a`.
fn matmul_rhs(m: &Match<'_>, a: Id) -> Vec<Id> {
    m.ops(m.eclass, "matmul").into_iter().filter(|(_, k)| k[0] == a).map(|(_, k)| k[1]).collect()
}

/// `qmatmul(a, b, sb, zb)` for an f32 `a` times per-column dequantized weights.
fn qmatmul_weights(m: &Match<'_>) -> Vec<Term> {
    let (Some(a), Some(b), Some(sb), Some(zb)) = (m.var("?a"), m.var("?b"), m.var("?sb"), m.var("?zb")) else {
        return Vec::new();
    };
    let fits = matmul_rhs(m, a).into_iter().any(|w| dequantizes(m, w, &[b, sb, zb]).any(|op| per_column(m, op, sb)));
    if !fits || m.data(a).ty.dtype != DType::F32 {
        return Vec::new();
    }
    vec![Term::node(Op::QMatMul, [a, b, sb, zb].map(Term::Class).to_vec())]
}

/// `qmatmul(a, sa, za, b, sb, zb)` for per-tensor dequantized activations
/// times per-column dequantized weights.
fn qmatmul_integer(m: &Match<'_>) -> Vec<Term> {
    let vars = ["?a", "?sa", "?za", "?b", "?sb", "?zb"].map(|v| m.var(v));
    let [Some(a), Some(sa), Some(za), Some(b), Some(sb), Some(zb)] = vars else { return Vec::new() };
    let lhs: Vec<Id> = m.ops(m.eclass, "matmul").into_iter().map(|(_, k)| k[0]).collect();
    let fits = lhs.into_iter().any(|x| {
        dequantizes(m, x, &[a, sa, za]).next().is_some()
            && matmul_rhs(m, x).into_iter().any(|w| dequantizes(m, w, &[b, sb, zb]).any(|op| per_column(m, op, sb)))
    });
    if !fits {
        return Vec::new();
    }
    vec![Term::node(Op::QMatMul, [a, sa, za, b, sb, zb].map(Term::Class).to_vec())]
}

/// The integer `qmatmul` with the quantize folded in.
fn qmatmul_requantize(m: &Match<'_>) -> Vec<Term> {
    let vars = ["?a", "?sa", "?za", "?b", "?sb", "?zb", "?sy", "?zy"].map(|v| m.var(v));
    let [Some(a), Some(sa), Some(za), Some(b), Some(sb), Some(zb), Some(sy), Some(zy)] = vars else {
        return Vec::new();
    };
    vec![Term::node(Op::QMatMul, [a, sa, za, b, sb, zb, sy, zy].map(Term::Class).to_vec())]
}

/// The unsigned weights and zero points of a blocked constant, as
/// `qmatmul_block` stores them: i8 values offset by 128; 4 bits when every
/// value is below 16, else 8.
fn unsigned(q: &Tensor, z: &Tensor) -> Option<(Vec<u8>, Vec<u8>, usize)> {
    let offset = match q.dtype() {
        DType::U8 => 0,
        DType::I8 => 128,
        _ => return None,
    };
    let shift = |t: &Tensor| -> Option<Vec<u8>> {
        t.to_i64_vec().ok()?.into_iter().map(|v| u8::try_from(v + offset).ok()).collect()
    };
    let (qv, zv) = (shift(q)?, shift(z)?);
    let bits = if qv.iter().chain(&zv).all(|&v| v < 16) { 4 } else { 8 };
    Some((qv, zv, bits))
}

/// `qmatmul_block(a, pack(q), s, z)` for constant `q` `[N, K]` and `z`
/// `[N, blocks]` (i8 or u8) and scale term `s`.
fn block_term(a: Id, q: &Tensor, s: Term, z: &Tensor, block: usize) -> Option<Term> {
    let [n, k] = *q.shape().dims() else { return None };
    let (qv, zv, bits) = unsigned(q, z)?;
    let row_bytes = (k * bits).div_ceil(8);
    let mut packed = vec![0u8; n * row_bytes];
    for (r, row) in qv.chunks(k.max(1)).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            *packed.get_mut(r * row_bytes + i * bits / 8)? |= v << (i * bits % 8);
        }
    }
    let packed = Tensor::from_vec(vec![n, row_bytes], packed).ok()?;
    let zeros = Tensor::from_vec(z.shape().clone(), zv).ok()?;
    let op = Op::QMatMulBlock { bits, block };
    Some(Term::node(op, vec![Term::Class(a), Term::Const(packed), s, Term::Const(zeros)]))
}

/// The block size of a blocked `dequantize` along `axis` over `[q, s, z]` in class `c`.
fn blocked(m: &Match<'_>, c: Id, kids: [Id; 3], axis: usize) -> Option<usize> {
    dequantizes(m, c, &kids).find_map(|op| match op {
        Op::Dequantize { axis: x, block } if *x == axis && *block > 0 => Some(*block),
        _ => None,
    })
}

/// `a · transpose(dequantize{axis=1, block}(q [N, K], s, z))`.
fn qmatmul_block_nk(m: &Match<'_>) -> Vec<Term> {
    let vars = ["?a", "?q", "?s", "?z"].map(|v| m.var(v));
    let [Some(a), Some(q), Some(s), Some(z)] = vars else { return Vec::new() };
    let (Some(qt), Some(zt)) = (m.const_tensor(q), m.const_tensor(z)) else { return Vec::new() };
    let transposed = matmul_rhs(m, a).into_iter().flat_map(|t| m.ops(t, "transpose"));
    let block = transposed
        .filter(|(op, _)| matches!(op, Op::Transpose { perm } if perm == &[1, 0]))
        .find_map(|(_, kids)| blocked(m, kids[0], [q, s, z], 1));
    block.and_then(|b| block_term(a, qt, Term::Class(s), zt, b)).into_iter().collect()
}

/// `a · dequantize{axis=0, block}(q [K, N], s, z)`: q, s and z transposed
/// at compile time.
fn qmatmul_block_kn(m: &Match<'_>) -> Vec<Term> {
    let vars = ["?a", "?q", "?s", "?z"].map(|v| m.var(v));
    let [Some(a), Some(q), Some(s), Some(z)] = vars else { return Vec::new() };
    let consts = (m.const_tensor(q), m.const_tensor(s), m.const_tensor(z));
    let (Some(qt), Some(st), Some(zt)) = consts else { return Vec::new() };
    let Some(block) = matmul_rhs(m, a).into_iter().find_map(|w| blocked(m, w, [q, s, z], 0)) else {
        return Vec::new();
    };
    let t = |x: &Tensor| {
        let [r, c] = *x.shape().dims() else { return None };
        let ty = nanoc_ir::TensorType::new(x.dtype(), vec![c, r]);
        interp::eval_op(&Op::Transpose { perm: vec![1, 0] }, &[x], &ty).ok()
    };
    let (Some(qn), Some(sn), Some(zn)) = (t(qt), t(st), t(zt)) else { return Vec::new() };
    block_term(a, &qn, Term::Const(sn), &zn, block).into_iter().collect()
}

/// `a [3, 40] · W`, W 4-bit-valued u8 weights (N = 5) in blocks of 16 along
/// K: `transpose(dequantize(q [5, 40]))` or `dequantize(q [40, 5])`.
fn block_example(e: &mut Ex, nk: bool) -> NodeId {
    let a = e.input("f32[3,40]");
    let (n, k, blocks) = (5usize, 40usize, 3usize);
    let q: Vec<f32> = (0..n * k).map(|i| ((i * 7) % 16) as f32).collect();
    let s: Vec<f32> = (0..n * blocks).map(|i| 0.01 + 0.002 * i as f32).collect();
    let z: Vec<f32> = (0..n * blocks).map(|i| (i % 16) as f32).collect();
    if nk {
        let q = e.values(&format!("u8[{n},{k}]"), &q);
        let s = e.values(&format!("f32[{n},{blocks}]"), &s);
        let z = e.values(&format!("u8[{n},{blocks}]"), &z);
        let w = e.op(Op::Dequantize { axis: 1, block: 16 }, &[q, s, z]);
        let wt = e.op(Op::Transpose { perm: vec![1, 0] }, &[w]);
        e.op(Op::MatMul, &[a, wt])
    } else {
        let q = e.values(&format!("i8[{k},{n}]"), &q.iter().map(|v| v * 9.0 - 70.0).collect::<Vec<_>>());
        let s = e.values(&format!("f32[{blocks},{n}]"), &s);
        let z = e.values(&format!("i8[{blocks},{n}]"), &z.iter().map(|v| v - 8.0).collect::<Vec<_>>());
        let w = e.op(Op::Dequantize { axis: 0, block: 16 }, &[q, s, z]);
        e.op(Op::MatMul, &[a, w])
    }
}

/// Per-column scale (f32 [n]) and zero point (`dtype` [n]) constants.
fn column_params(e: &mut Ex, n: usize, dtype: DType) -> (NodeId, NodeId) {
    let scales: Vec<f32> = (0..n).map(|i| 0.01 + 0.003 * i as f32).collect();
    let offset = if dtype == DType::U8 { 128.0 } else { 0.0 };
    let zeros: Vec<f32> = (0..n).map(|i| (i % 5) as f32 - 2.0 + offset).collect();
    let s = e.values(&format!("f32[{n}]"), &scales);
    let z = e.values(&format!("{dtype}[{n}]"), &zeros);
    (s, z)
}

/// Per-tensor activation scale and zero point.
fn tensor_params(e: &mut Ex, scale: f32, zero: f32, dtype: DType) -> (NodeId, NodeId) {
    let s = e.splat("f32[]", scale);
    let z = e.values(&format!("{dtype}[]"), &[zero]);
    (s, z)
}

/// `dequantize(a u8 [7, 33]) · dequantize(b i8 [33, 5])`, per-column weights.
fn integer_example(e: &mut Ex) -> NodeId {
    let a = e.input("u8[7,33]");
    let (sa, za) = tensor_params(e, 0.02, 128.0, DType::U8);
    let da = e.op(dq(0), &[a, sa, za]);
    let b = e.input("i8[33,5]");
    let (sb, zb) = column_params(e, 5, DType::I8);
    let db = e.op(dq(1), &[b, sb, zb]);
    e.op(Op::MatMul, &[da, db])
}

/// `quantize(qmatmul(a, ..., b, ...))` to i8.
fn requantize_example(e: &mut Ex) -> NodeId {
    let a = e.input("i8[7,33]");
    let (sa, za) = tensor_params(e, 0.05, -3.0, DType::I8);
    let b = e.input("u8[33,5]");
    let (sb, zb) = column_params(e, 5, DType::U8);
    let y = e.op(Op::QMatMul, &[a, sa, za, b, sb, zb]);
    let (sy, zy) = tensor_params(e, 0.25, 7.0, DType::I8);
    e.op(Op::Quantize { axis: 0, block: 0, to: DType::I8 }, &[y, sy, zy])
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_rule_builds_and_holds() {
        super::super::check::check_table(&super::rules());
    }
}
