//! Attention: `softmax(scale · q·kᵀ + mask) · v` into one `attention` node,
//! from the layouts exporters write.
//!
//! The patterns fix the outer shape (a product of a last-axis softmax, or a
//! cast of one, with v); the Rust right-hand side reads the rest from the
//! e-graph, looking at every node of each class:
//!
//! - **scores**, from the softmax operand inwards: float casts; masks
//!   (`add` of any tensor, or `where(cond, s, fill)` / `where(cond, fill, s)`
//!   with a scalar `fill <= -1e4`); then scales (`div`/`mul` by a scalar
//!   constant, never outside a mask); then `matmul(q, kᵀ)`.
//! - **q** and **kᵀ** may carry scalar scales too (scale on q, or √scale on
//!   q and k); kᵀ is undone by composing its `transpose` with the last-two
//!   swap (no new node when they cancel), else by a new transpose.
//! - **GQA/MQA**: a k or v that is only a head repeat of a tensor with fewer
//!   heads (Unsqueeze→Expand→Reshape, Tile, ...: a chain of reshape,
//!   broadcast and transpose) is replaced by that tensor when evaluating the
//!   chain on an index tensor shows that head `h` reads kv head
//!   `h / (H / Hkv)`, the op's grouping.
//! - **masks**: constant parts are summed into one additive mask; if that is
//!   exactly the top-left causal triangle (0 on and below the diagonal,
//!   `<= -1e4` above, in every head) the op gets `causal=true` and no mask,
//!   else the mask becomes the fourth operand.
//! - **rank 3** (`[B·H, S, D]` batched heads): the operands are reshaped to
//!   one head per batch entry and the result back.
//!
//! The law holds for rows with at least one key left unmasked (a row with
//! every key masked is NaN or a uniform average in the decomposition, zeros
//! or a score-weighted average in the op); replacing a `-1e4` triangle by
//! `causal` changes the weights by less than `e^-1e4`.

use super::{Ex, Match, Rule, Term, rw_fn};
use crate::egraph::lang::OpKind;
use egg::Id;
use nanoc_ir::{BinaryOp, DType, NodeId, Op, Shape, Tensor, TensorType, interp};

/// The attention rules (fusion stage).
#[rustfmt::skip]
pub fn rules() -> Vec<Rule> {
    vec![
        // law: softmax(scale · q·kᵀ + mask) · v = attention(q, k, v, mask, scale)   (GPT-2: Where tril, Div √D, kᵀ by transpose{0,2,3,1})
        rw_fn("attention", "(matmul (softmax ?s) ?v)", attention, "", gpt2_example),
        // law: cast(softmax(scale · q·kᵀ + mask)) · v = attention(q, k, v, mask, scale)   (Cast around Softmax, f32 compute)
        rw_fn("attention-cast", "(matmul (cast (softmax ?s)) ?v)", attention, "", cast_example),
    ]
}

/// Above this many elements, a head-repeat chain is not evaluated (the
/// tensor is then used as it is, with all its heads).
const REPEAT_CHECK_MAX: usize = 1 << 20;

/// The largest mask value that still counts as "masked" when deciding
/// whether a constant mask is the causal triangle, or a `where` fill.
const MASKED: f64 = -1e4;

/// The right-hand side of every row: `attention(...)` for the matched product.
fn attention(m: &Match<'_>) -> Vec<Term> {
    let (Some(s), Some(v)) = (m.var("?s"), m.var("?v")) else { return Vec::new() };
    let rank = m.data(s).ty.shape.rank();
    if !(rank == 3 || rank == 4) || !softmax_over_last_axis(m, s, v) {
        return Vec::new();
    }
    let out_ty = m.data(m.eclass).ty.clone();
    let Some(scores) = scores(m, s, 6, false) else { return Vec::new() };
    let mut out = Vec::new();
    // With head repeats undone if k and v agree on them, else without.
    for repeats in [true, false] {
        let Some(t) = build(m, &scores, v, rank, &out_ty, repeats) else { continue };
        out.push(t);
        break;
    }
    out
}

/// The matched class's product is `p · v` with `p` a softmax (or a cast of
/// one) of `s` over its last axis.
fn softmax_over_last_axis(m: &Match<'_>, s: Id, v: Id) -> bool {
    let last = m.data(s).ty.shape.rank() - 1;
    let is_softmax = |p: Id| {
        m.ops(p, "softmax").iter().any(|(op, kids)| kids[0] == s && matches!(op, Op::Softmax { axis } if *axis == last))
    };
    m.ops(m.eclass, "matmul").iter().filter(|(_, kids)| kids[1] == v).any(|(_, kids)| {
        let p = kids[0];
        is_softmax(p) || m.ops(p, "cast").iter().any(|(_, c)| m.data(c[0]).ty.dtype.is_float() && is_softmax(c[0]))
    })
}

/// One part of the mask, outermost first.
#[derive(Clone, Copy, Debug)]
enum MaskPart {
    /// `s + x`.
    Add(Id),
    /// `where(cond, s, fill)` (`keep_true`) or `where(cond, fill, s)`.
    Where { cond: Id, fill: f64, keep_true: bool },
}

/// What the scores are made of.
#[derive(Clone, Debug)]
struct Scores {
    q: Id,
    kt: Id,
    scale: f64,
    masks: Vec<MaskPart>,
}

/// A scalar constant's value.
fn scalar(m: &Match<'_>, c: Id) -> Option<f64> {
    m.data(c).scalar().filter(|x| x.is_finite())
}

/// The scores `s` as `scale · q·kᵀ` under masks, looking `depth` nodes
/// deep; `scaled` once a scale was peeled (no mask may sit inside it).
fn scores(m: &Match<'_>, s: Id, depth: usize, scaled: bool) -> Option<Scores> {
    if depth == 0 {
        return None;
    }
    let rank = m.data(s).ty.shape.rank();
    for (_, kids) in m.ops(s, "matmul") {
        let (q, kt) = (kids[0], kids[1]);
        if m.data(q).ty.shape.rank() == rank && m.data(kt).ty.shape.rank() == rank && m.data(q).ty.dtype.is_float() {
            return Some(Scores { q, kt, scale: 1.0, masks: Vec::new() });
        }
    }
    for (_, kids) in m.ops(s, "cast") {
        if m.data(kids[0]).ty.dtype.is_float()
            && let Some(r) = scores(m, kids[0], depth - 1, scaled)
        {
            return Some(r);
        }
    }
    // Scales: s = x / c, x · c, c · x.
    let scaled_by = |x: Id, f: f64| {
        scores(m, x, depth - 1, true).map(|mut r| {
            r.scale *= f;
            r
        })
    };
    for (_, kids) in m.ops(s, "div") {
        if let Some(c) = scalar(m, kids[1]).filter(|&c| c != 0.0)
            && let Some(r) = scaled_by(kids[0], 1.0 / c)
        {
            return Some(r);
        }
    }
    for (_, kids) in m.ops(s, "mul") {
        for (x, c) in [(kids[0], kids[1]), (kids[1], kids[0])] {
            if let Some(c) = scalar(m, c)
                && let Some(r) = scaled_by(x, c)
            {
                return Some(r);
            }
        }
    }
    if scaled {
        return None;
    }
    let masked_by = |x: Id, part: MaskPart| {
        scores(m, x, depth - 1, false).map(|mut r| {
            r.masks.insert(0, part);
            r
        })
    };
    for (_, kids) in m.ops(s, "where") {
        let cond = kids[0];
        for (x, fill, keep_true) in [(kids[1], kids[2], true), (kids[2], kids[1], false)] {
            if let Some(fill) = m.data(fill).scalar().filter(|&f| f <= MASKED)
                && let Some(r) = masked_by(x, MaskPart::Where { cond, fill, keep_true })
            {
                return Some(r);
            }
        }
    }
    for (_, kids) in m.ops(s, "add") {
        for (x, mask) in [(kids[0], kids[1]), (kids[1], kids[0])] {
            if m.data(mask).ty.dtype == m.data(s).ty.dtype
                && let Some(r) = masked_by(x, MaskPart::Add(mask))
            {
                return Some(r);
            }
        }
    }
    None
}

/// Builds the attention term for `scores · v` (`rank` 3 or 4) of type `out_ty`.
fn build(m: &Match<'_>, sc: &Scores, v: Id, rank: usize, out_ty: &TensorType, repeats: bool) -> Option<Term> {
    let (q, q_scale) = operand(m, sc.q, false, true, false, 4);
    let (k, k_scale) = operand(m, sc.kt, true, true, repeats, 4);
    let (v, _) = operand(m, v, false, false, repeats, 4);
    let scale = sc.scale * q_scale * k_scale;
    let [q, k, v] = [q, k, v].map(|t| if rank == 3 { one_head(m, t) } else { t });
    let (qt, kt) = (term_type(m, &q)?, term_type(m, &k)?);
    let (b, h, sq, sk) = (qt.shape.0[0], qt.shape.0[1], qt.shape.0[2], kt.shape.0[2]);
    let (mask, causal) = mask(m, &sc.masks, [b, h, sq, sk], rank)?;
    let mut args = vec![q, k, v];
    args.extend(mask);
    let att = Term::node(Op::Attention { scale: scale as f32, causal }, args);
    let att =
        if rank == 3 { Term::Node { op: Op::Reshape, declared: Some(out_ty.clone()), args: vec![att] } } else { att };
    // k and v must agree on their heads (else retry without undoing repeats).
    (term_type(m, &att).as_ref() == Some(out_ty)).then_some(att)
}

/// A `[N, S, D]` term as `[N, 1, S, D]` (reshaping what a reshaped class
/// reshapes, so that chains of reshapes do not grow).
fn one_head(m: &Match<'_>, t: Term) -> Term {
    match term_type(m, &t) {
        Some(ty) if ty.shape.rank() == 3 => {
            let d = &ty.shape.0;
            let declared = TensorType::new(ty.dtype, vec![d[0], 1, d[1], d[2]]);
            let from = match t {
                Term::Class(c) => m.ops(c, "reshape").first().map_or(Term::Class(c), |(_, kids)| Term::Class(kids[0])),
                other => other,
            };
            Term::Node { op: Op::Reshape, declared: Some(declared), args: vec![from] }
        }
        _ => t,
    }
}

/// The type of a term built here (classes, transposes, reshapes).
fn term_type(m: &Match<'_>, t: &Term) -> Option<TensorType> {
    match t {
        Term::Class(c) => Some(m.data(*c).ty.clone()),
        Term::Const(c) => Some(c.ty().clone()),
        Term::Node { op, declared, args } => {
            let tys = args.iter().map(|a| term_type(m, a)).collect::<Option<Vec<_>>>()?;
            let refs: Vec<&TensorType> = tys.iter().collect();
            op.infer(&refs, declared.as_ref().unwrap_or(&TensorType::new(DType::F32, Vec::<usize>::new()))).ok()
        }
    }
}

/// An operand of attention from class `c`: with `transposed`, `c` holds its
/// last two dims swapped (kᵀ); `scales` peels scalar factors (returned);
/// `repeats` undoes head repeats. `depth` bounds the search.
fn operand(m: &Match<'_>, c: Id, transposed: bool, scales: bool, repeats: bool, depth: usize) -> (Term, f64) {
    let rank = m.data(c).ty.shape.rank();
    let swap: Vec<usize> = (0..rank.saturating_sub(2)).chain([rank - 1, rank.saturating_sub(2)]).collect();
    if depth > 0 {
        if scales {
            let mut found = None;
            for (_, kids) in m.ops(c, "div") {
                if let Some(x) = scalar(m, kids[1]).filter(|&x| x != 0.0) {
                    found = Some((kids[0], 1.0 / x));
                }
            }
            for (_, kids) in m.ops(c, "mul") {
                for (x, f) in [(kids[0], kids[1]), (kids[1], kids[0])] {
                    if let Some(f) = scalar(m, f) {
                        found = Some((x, f));
                    }
                }
            }
            if let Some((x, f)) = found {
                let (t, g) = operand(m, x, transposed, scales, repeats, depth - 1);
                return (t, f * g);
            }
        }
        if repeats && let Some(x) = head_repeat(m, c) {
            return operand(m, x, transposed, scales, repeats, depth - 1);
        }
        if transposed {
            for (op, kids) in m.ops(c, "transpose") {
                let Op::Transpose { perm } = op else { continue };
                // c = transpose_perm(x), so the untransposed operand is transpose_{perm ∘ swap}(x).
                let composed: Vec<usize> = swap.iter().map(|&i| perm[i]).collect();
                if composed.iter().enumerate().all(|(i, &p)| i == p) {
                    return operand(m, kids[0], false, scales, repeats, depth - 1);
                }
                return (Term::node(Op::Transpose { perm: composed }, vec![Term::Class(kids[0])]), 1.0);
            }
        }
    }
    if transposed {
        (Term::node(Op::Transpose { perm: swap }, vec![Term::Class(c)]), 1.0)
    } else {
        (Term::Class(c), 1.0)
    }
}

/// A class `x` with fewer heads that `c` (`[B, H, X, Y]`) only repeats
/// through reshapes, broadcasts and transposes so that head `h` of `c` is
/// head `h / (H / Hkv)` of `x`, checked by evaluating the chain.
fn head_repeat(m: &Match<'_>, c: Id) -> Option<Id> {
    let ty = &m.data(c).ty;
    let [b, h, x, y] = <[usize; 4]>::try_from(ty.shape.dims()).ok()?;
    if ty.shape.numel() > REPEAT_CHECK_MAX {
        return None;
    }
    // Chains below c, outermost op first: (op, declared type, operand).
    let mut stack: Vec<(Id, Vec<(Op, TensorType)>)> = vec![(c, Vec::new())];
    while let Some((class, chain)) = stack.pop() {
        if chain.len() >= 4 {
            continue;
        }
        for family in ["reshape", "broadcast", "transpose"] {
            for (op, kids) in m.ops(class, family) {
                let mut chain = chain.clone();
                chain.push((op.clone(), m.data(class).ty.clone()));
                let below = kids[0];
                let bt = &m.data(below).ty;
                if let [bb, hkv, bx, by] = bt.shape.dims()
                    && (*bb, *bx, *by) == (b, x, y)
                    && *hkv > 0
                    && *hkv < h
                    && h % hkv == 0
                    && repeats_heads(bt, &chain, h)
                {
                    return Some(below);
                }
                stack.push((below, chain));
            }
        }
    }
    None
}

/// Evaluates `chain` (outermost first) on an index tensor of type `from`
/// and checks that head `h` of the result is head `h / (H / Hkv)` of it.
fn repeats_heads(from: &TensorType, chain: &[(Op, TensorType)], h: usize) -> bool {
    let n = from.shape.numel();
    let as_index = |t: &TensorType| TensorType::new(DType::I64, t.shape.clone());
    let Ok(mut t) = Tensor::from_vec(from.shape.clone(), (0..n as i64).collect::<Vec<i64>>()) else { return false };
    for (op, ty) in chain.iter().rev() {
        match interp::eval_op(op, &[&t], &as_index(ty)) {
            Ok(r) => t = r,
            Err(_) => return false,
        }
    }
    let [b, hkv, x, y] = <[usize; 4]>::try_from(from.shape.dims()).unwrap_or([0; 4]);
    let Ok(got) = t.to_vec::<i64>() else { return false };
    let group = h / hkv.max(1);
    let want = (0..b).flat_map(|bi| {
        (0..h).flat_map(move |hi| (0..x * y).map(move |e| (((bi * hkv + hi / group) * x * y) + e) as i64))
    });
    got.len() == b * h * x * y && got.into_iter().eq(want)
}

/// The value of a constant class (a constant leaf in it).
fn const_value<'a>(m: &Match<'a>, c: Id) -> Option<&'a Tensor> {
    m.eg[c].nodes.iter().find_map(|n| match n.info().map(|i| &i.kind) {
        Some(OpKind::Const(i)) => m.eg.analysis.consts.get(*i),
        _ => None,
    })
}

/// The mask operand (if any) and whether the masks are the causal triangle,
/// for scores `[B, H, Sq, Sk]` (`rank` 3: `[B·H, Sq, Sk]` seen as one head).
fn mask(m: &Match<'_>, parts: &[MaskPart], scores: [usize; 4], rank: usize) -> Option<(Option<Term>, bool)> {
    if parts.is_empty() {
        return Some((None, false));
    }
    let dtype = DType::F32;
    // The additive form of every part, as a constant when it is one.
    let mut consts: Vec<Tensor> = Vec::new();
    let mut terms: Vec<Term> = Vec::new();
    for &p in parts {
        match p {
            MaskPart::Add(x) => match const_value(m, x) {
                Some(t) if t.dtype() == dtype => consts.push(t.clone()),
                _ => terms.push(Term::Class(x)),
            },
            MaskPart::Where { cond, fill, keep_true } => {
                let (yes, no) = if keep_true { (0.0, fill) } else { (fill, 0.0) };
                let (yes, no) = (Tensor::scalar(yes as f32), Tensor::scalar(no as f32));
                match const_value(m, cond) {
                    Some(c) => {
                        let ty = TensorType::new(dtype, c.shape().clone());
                        consts.push(interp::eval_op(&Op::Where, &[c, &yes, &no], &ty).ok()?);
                    }
                    None => {
                        terms.push(Term::node(Op::Where, vec![Term::Class(cond), Term::Const(yes), Term::Const(no)]))
                    }
                }
            }
        }
    }
    let mut sum: Option<Tensor> = None;
    for t in consts {
        sum = Some(match sum {
            None => t,
            Some(a) => {
                let shape = Shape::broadcast(a.shape(), t.shape())?;
                interp::eval_op(&Op::Binary(BinaryOp::Add), &[&a, &t], &TensorType::new(dtype, shape)).ok()?
            }
        });
    }
    let mut causal = false;
    if let Some(c) = &sum {
        if terms.is_empty() && is_causal(c, scores[2], scores[3]) {
            causal = true;
        } else {
            terms.push(Term::Const(c.clone()));
        }
    }
    let mut mask: Option<Term> = None;
    for t in terms {
        mask = Some(match mask {
            None => t,
            Some(a) => Term::node(Op::Binary(BinaryOp::Add), vec![a, t]),
        });
    }
    // Rank-3 scores: a [N, Sq, Sk] mask becomes [N, 1, Sq, Sk].
    if rank == 3
        && let Some(t) = mask.take()
    {
        mask = Some(one_head(m, t));
    }
    Some((mask, causal))
}

/// True if `mask` (broadcastable to `[.., sq, sk]`) is 0 where `j <= i` and
/// at most [`MASKED`] where `j > i`, in every leading position.
fn is_causal(mask: &Tensor, sq: usize, sk: usize) -> bool {
    let dims = mask.shape().dims();
    let lead: Vec<usize> = dims[..dims.len().saturating_sub(2)].to_vec();
    let mut full = lead.clone();
    full.extend([sq, sk]);
    let ty = TensorType::new(mask.dtype(), full);
    let Ok(t) = interp::eval_op(&Op::Broadcast, &[mask], &ty) else { return false };
    let values = t.to_f64_vec();
    sq * sk > 0
        && values
            .chunks_exact(sq * sk)
            .all(|block| block.iter().enumerate().all(|(n, &x)| if n % sk <= n / sk { x == 0.0 } else { x <= MASKED }))
}

// ---- examples ----------------------------------------------------------

/// The layers shared by the examples: q, k, v heads from `[1, 7, 16]`
/// projections (4 heads of 4, or 2 kv heads for GQA).
struct Heads {
    q: NodeId,
    k: NodeId,
    v: NodeId,
}

/// `x [1, s, heads·d]` → reshape `[1, s, heads, d]` → transpose `perm`.
fn split_heads(e: &mut Ex, x: NodeId, s: usize, heads: usize, d: usize, perm: &[usize]) -> NodeId {
    let r = e.typed(Op::Reshape, &[x], &format!("f32[1,{s},{heads},{d}]"));
    e.op(Op::Transpose { perm: perm.to_vec() }, &[r])
}

/// q `[1, 4, 7, 4]`, kᵀ `[1, 4, 4, 7]` (transpose{0,2,3,1}), v `[1, 4, 7, 4]`.
fn gpt2_heads(e: &mut Ex) -> Heads {
    let (x, y, z) = (e.input("f32[1,7,16]"), e.input("f32[1,7,16]"), e.input("f32[1,7,16]"));
    Heads {
        q: split_heads(e, x, 7, 4, 4, &[0, 2, 1, 3]),
        k: split_heads(e, y, 7, 4, 4, &[0, 2, 3, 1]),
        v: split_heads(e, z, 7, 4, 4, &[0, 2, 1, 3]),
    }
}

fn bin(e: &mut Ex, b: BinaryOp, x: NodeId, y: NodeId) -> NodeId {
    e.op(Op::Binary(b), &[x, y])
}

/// A constant bool lower triangle `[1, 1, n, n]`.
fn tril(e: &mut Ex, n: usize) -> NodeId {
    let v: Vec<bool> = (0..n * n).map(|i| i % n <= i / n).collect();
    let t = Tensor::from_vec(vec![1, 1, n, n], v).unwrap_or_else(|_| Tensor::scalar(true));
    e.g.add_const("tril", t)
}

/// GPT-2: `where(tril, q·kᵀ / √d, f32::MIN)`, softmax, · v.
fn gpt2_example(e: &mut Ex) -> NodeId {
    let hd = gpt2_heads(e);
    let s = e.op(Op::MatMul, &[hd.q, hd.k]);
    let c = e.splat("f32[]", 2.0);
    let s = bin(e, BinaryOp::Div, s, c);
    let t = tril(e, 7);
    let fill = e.splat("f32[]", f32::MIN);
    let s = e.op(Op::Where, &[t, s, fill]);
    let p = e.op(Op::Softmax { axis: 3 }, &[s]);
    e.op(Op::MatMul, &[p, hd.v])
}

/// Casts around the softmax of scaled scores.
fn cast_example(e: &mut Ex) -> NodeId {
    let hd = gpt2_heads(e);
    let s = e.op(Op::MatMul, &[hd.q, hd.k]);
    let c = e.splat("f32[]", 0.5);
    let s = bin(e, BinaryOp::Mul, s, c);
    let s = e.op(Op::Cast { to: DType::F32 }, &[s]);
    let p = e.op(Op::Softmax { axis: 3 }, &[s]);
    let p = e.op(Op::Cast { to: DType::F32 }, &[p]);
    e.op(Op::MatMul, &[p, hd.v])
}

#[cfg(test)]
mod tests {
    use super::super::check::{check_rule, example_graph};
    use super::super::{Example, Rule};
    use super::*;
    use crate::egraph::{OptOptions, optimize};

    #[test]
    fn every_rule_builds_and_holds() {
        super::super::check::check_table(&super::rules());
    }

    /// q `[1, 4, 7, 4]`, k `[1, 4, 7, 4]` (split with {0,2,1,3}), v.
    fn bert_heads(e: &mut Ex) -> Heads {
        let (x, y, z) = (e.input("f32[1,7,16]"), e.input("f32[1,7,16]"), e.input("f32[1,7,16]"));
        Heads {
            q: split_heads(e, x, 7, 4, 4, &[0, 2, 1, 3]),
            k: split_heads(e, y, 7, 4, 4, &[0, 2, 1, 3]),
            v: split_heads(e, z, 7, 4, 4, &[0, 2, 1, 3]),
        }
    }

    fn kt(e: &mut Ex, k: NodeId) -> NodeId {
        e.op(Op::Transpose { perm: vec![0, 1, 3, 2] }, &[k])
    }

    fn triangle(e: &mut Ex, n: usize, fill: f32) -> NodeId {
        let v: Vec<f32> = (0..n * n).map(|i| if i % n <= i / n { 0.0 } else { fill }).collect();
        e.g.add_const("triangle", Tensor::from_vec(vec![n, n], v).unwrap())
    }

    fn finish(e: &mut Ex, s: NodeId, v: NodeId) -> NodeId {
        let p = e.op(Op::Softmax { axis: 3 }, &[s]);
        e.op(Op::MatMul, &[p, v])
    }

    /// BERT: scores · (1/√d) + padding mask input [1, 1, 1, 7].
    fn bert(e: &mut Ex) -> NodeId {
        let hd = bert_heads(e);
        let k = kt(e, hd.k);
        let s = e.op(Op::MatMul, &[hd.q, k]);
        let c = e.splat("f32[]", 0.5);
        let s = bin(e, BinaryOp::Mul, s, c);
        let pad = e.input("f32[1,1,1,7]");
        let s = bin(e, BinaryOp::Add, s, pad);
        finish(e, s, hd.v)
    }

    /// Scale on q, -1e4 triangle added before the scores (mask first).
    fn scale_on_q(e: &mut Ex) -> NodeId {
        let hd = bert_heads(e);
        let c = e.splat("f32[]", 0.5);
        let q = bin(e, BinaryOp::Mul, hd.q, c);
        let k = kt(e, hd.k);
        let s = e.op(Op::MatMul, &[q, k]);
        let m = triangle(e, 7, -1e4);
        let s = bin(e, BinaryOp::Add, m, s);
        finish(e, s, hd.v)
    }

    /// √scale on q and on kᵀ (kᵀ straight from the head split), -inf triangle.
    fn sqrt_on_both(e: &mut Ex) -> NodeId {
        let hd = gpt2_heads(e);
        let c = e.splat("f32[]", 0.70710677);
        let q = bin(e, BinaryOp::Mul, hd.q, c);
        let k = bin(e, BinaryOp::Mul, hd.k, c);
        let s = e.op(Op::MatMul, &[q, k]);
        let m = triangle(e, 7, f32::NEG_INFINITY);
        let s = bin(e, BinaryOp::Add, s, m);
        finish(e, s, hd.v)
    }

    /// A bottom-right triangle with Sq < Sk stays a mask operand.
    fn not_top_left(e: &mut Ex) -> NodeId {
        let q = e.input("f32[1,2,3,4]");
        let k = e.input("f32[1,2,5,4]");
        let v = e.input("f32[1,2,5,3]");
        let k = kt(e, k);
        let s = e.op(Op::MatMul, &[q, k]);
        let v8: Vec<f32> = (0..15).map(|n| if n % 5 <= n / 5 + 2 { 0.0 } else { -1e9 }).collect();
        let m = e.g.add_const("bottom_right", Tensor::from_vec(vec![3, 5], v8).unwrap());
        let s = bin(e, BinaryOp::Add, s, m);
        finish(e, s, v)
    }

    /// GQA: k and v with 2 heads repeated to 4 by reshape → broadcast → reshape.
    fn gqa(e: &mut Ex) -> NodeId {
        let x = e.input("f32[1,7,16]");
        let q = split_heads(e, x, 7, 4, 4, &[0, 2, 1, 3]);
        let mut kv = Vec::new();
        for _ in 0..2 {
            let y = e.input("f32[1,7,8]");
            let h = split_heads(e, y, 7, 2, 4, &[0, 2, 1, 3]);
            let u = e.typed(Op::Reshape, &[h], "f32[1,2,1,7,4]");
            let b = e.typed(Op::Broadcast, &[u], "f32[1,2,2,7,4]");
            kv.push(e.typed(Op::Reshape, &[b], "f32[1,4,7,4]"));
        }
        let k = kt(e, kv[0]);
        let s = e.op(Op::MatMul, &[q, k]);
        let c = e.splat("f32[]", 0.5);
        let s = bin(e, BinaryOp::Mul, s, c);
        let t = tril(e, 7);
        let fill = e.splat("f32[]", -3.0e38);
        let s = e.op(Op::Where, &[t, s, fill]);
        finish(e, s, kv[1])
    }

    /// Heads batched as [4, 7, 4] with 3-D matmuls.
    fn batched_3d(e: &mut Ex) -> NodeId {
        let q = e.input("f32[4,7,4]");
        let k = e.input("f32[4,7,4]");
        let v = e.input("f32[4,7,5]");
        let k = e.op(Op::Transpose { perm: vec![0, 2, 1] }, &[k]);
        let s = e.op(Op::MatMul, &[q, k]);
        let c = e.splat("f32[]", 2.0);
        let s = bin(e, BinaryOp::Div, s, c);
        let p = e.op(Op::Softmax { axis: 2 }, &[s]);
        e.op(Op::MatMul, &[p, v])
    }

    /// Every exporter layout above fuses through the `attention` row, and
    /// the fused graph computes what the decomposition does.
    #[test]
    fn exporter_layouts_fuse() {
        let row = rules()[0];
        let layouts: [(&str, fn(&mut Ex) -> NodeId, bool, bool); 6] = [
            ("bert", bert, false, true),
            ("scale_on_q", scale_on_q, true, false),
            ("sqrt_on_both", sqrt_on_both, true, false),
            ("not_top_left", not_top_left, false, true),
            ("gqa", gqa, true, false),
            ("batched_3d", batched_3d, false, false),
        ];
        for (name, build, causal, masked) in layouts {
            let rule = Rule { example: Example::Build(build), ..row };
            check_rule(&rule);
            let g = example_graph(&rule);
            let (opt, _) = optimize(&g, &nanoc_targets::Target::find("cpu-x86_64").unwrap(), &OptOptions::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let atts: Vec<_> = opt
                .node_ids()
                .into_iter()
                .filter_map(|id| match &opt.node(id).op {
                    Op::Attention { causal, .. } => Some((*causal, opt.args(id).len())),
                    _ => None,
                })
                .collect();
            assert_eq!(atts, vec![(causal, if masked { 4 } else { 3 })], "{name}:\n{}", nanoc_ir::text::print(&opt));
            let names: Vec<&str> = opt.node_ids().iter().map(|&id| opt.node(id).op.name()).collect();
            for gone in ["softmax", "broadcast", "where"] {
                assert!(!names.contains(&gone), "{name}: {gone} left:\n{}", nanoc_ir::text::print(&opt));
            }
        }
    }

    /// A product with a softmax that is not over attention scores (or not
    /// over the last axis) is left alone.
    #[test]
    fn other_softmax_products_do_not_fuse() {
        let mut e = Ex::default();
        let x = e.input("f32[1,4,7,7]");
        let v = e.input("f32[1,4,7,4]");
        let p = e.op(Op::Softmax { axis: 3 }, &[x]);
        let y = e.op(Op::MatMul, &[p, v]);
        let mut e2 = Ex::default();
        let q = e2.input("f32[1,4,7,4]");
        let k = e2.input("f32[1,4,4,7]");
        let v2 = e2.input("f32[1,4,7,4]");
        let s = e2.op(Op::MatMul, &[q, k]);
        let p = e2.op(Op::Softmax { axis: 2 }, &[s]);
        let y2 = e2.op(Op::MatMul, &[p, v2]);
        for (mut ex, root) in [(e, y), (e2, y2)] {
            ex.g.add_output("y", root);
            let (opt, _) =
                optimize(&ex.g, &nanoc_targets::Target::find("cpu-x86_64").unwrap(), &OptOptions::default()).unwrap();
            assert!(opt.node_ids().iter().all(|&id| opt.node(id).op.name() != "attention"));
        }
    }
}
