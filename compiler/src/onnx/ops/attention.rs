//! Attention ops into the IR `attention` op: ONNX `Attention` (opset 23+)
//! and onnxruntime's `MultiHeadAttention` and `GroupQueryAttention`
//! (domain `com.microsoft`), for the forms without rotary embedding,
//! packed inputs or per-batch sequence lengths. What is not supported is an
//! error naming the input or attribute.

use super::{Ctx, ImportFn, Res};
use nanoc_ir::{BinaryOp, DType, NodeId, Op, PadMode, TensorType};

/// The default-domain attention ops.
pub(super) const OPS: &[(&str, ImportFn)] = &[("Attention", onnx_attention)];

/// The `com.microsoft` attention ops.
pub(super) const CONTRIB_OPS: &[(&str, ImportFn)] =
    &[("MultiHeadAttention", multi_head_attention), ("GroupQueryAttention", group_query_attention)];

/// `[B, S, heads·d]` → `[B, heads, S, d]`.
fn split_heads(c: &mut Ctx<'_, '_>, x: NodeId, heads: usize, what: &str) -> Res<NodeId> {
    let t = c.ty(x);
    let [b, s, hidden] = <[usize; 3]>::try_from(t.shape.dims())
        .map_err(|_| c.err(format!("{what} must be [batch, sequence, hidden], got {t}")))?;
    if heads == 0 || hidden % heads != 0 {
        return Err(c.err(format!("{what} hidden size {hidden} is not a multiple of {heads} heads")));
    }
    let r = TensorType::new(t.dtype, vec![b, s, heads, hidden / heads]);
    let r = c.add_typed(Some(&format!("{what}_heads")), Op::Reshape, &[x], r)?;
    c.add(Some(&format!("{what}_bnsh")), Op::Transpose { perm: vec![0, 2, 1, 3] }, &[r])
}

/// `[B, heads, S, d]` → `[B, S, heads·d]`.
fn merge_heads(c: &mut Ctx<'_, '_>, y: NodeId) -> Res<NodeId> {
    let t = c.ty(y);
    let d = t.shape.dims().to_vec();
    let tr = c.add(Some("bsnh"), Op::Transpose { perm: vec![0, 2, 1, 3] }, &[y])?;
    let hidden = d[1].checked_mul(d[3]).ok_or_else(|| c.err("output size overflows"))?;
    c.add_typed(None, Op::Reshape, &[tr], TensorType::new(t.dtype, vec![d[0], d[2], hidden]))
}

/// The number of heads in attribute `name` (positive), if present.
fn heads_attr(c: &Ctx<'_, '_>, name: &str) -> Res<Option<usize>> {
    match c.attr_int(name)? {
        None => Ok(None),
        Some(n) if n > 0 => Ok(Some(n as usize)),
        Some(n) => Err(c.err(format!("attribute {name} must be positive, got {n}"))),
    }
}

/// A bool mask as an additive one (true keeps: 0, false drops: -inf); a
/// float mask as it is.
fn additive_mask(c: &mut Ctx<'_, '_>, m: NodeId, dtype: DType) -> Res<NodeId> {
    let t = c.ty(m);
    if t.dtype == DType::Bool {
        let zero = c.scalar("mask_keep", dtype, 0.0)?;
        let ninf = c.scalar("mask_drop", dtype, f64::NEG_INFINITY)?;
        return c.add(Some("mask"), Op::Where, &[m, zero, ninf]);
    }
    if t.dtype != dtype {
        return Err(c.err(format!("attn_mask must be bool or {dtype} like Q, got {t}")));
    }
    Ok(m)
}

/// The additive mask `0` where `j <= i + offset`, `-inf` elsewhere, `[sq, sk]`.
fn causal_mask(c: &mut Ctx<'_, '_>, sq: usize, sk: usize, offset: usize, dtype: DType) -> Res<NodeId> {
    let n = sq.checked_mul(sk).filter(|&n| n <= 1 << 26).ok_or_else(|| c.err("causal mask is too large"))?;
    let v: Vec<f64> = (0..n).map(|e| if e % sk <= e / sk + offset { 0.0 } else { f64::NEG_INFINITY }).collect();
    let t = super::tensor_from_f64(dtype, vec![sq, sk], &v).map_err(|m| c.err(m))?;
    Ok(c.add_const(Some("causal_mask"), t))
}

/// q, k, v (4-D), optional additive mask, scale and causal flag; `offset`
/// is the number of cached keys before the new ones (causal alignment).
struct Parts {
    q: NodeId,
    k: NodeId,
    v: NodeId,
    mask: Option<NodeId>,
    scale: Option<f32>,
    causal: bool,
    offset: usize,
}

/// The dims of a rank-4 type.
fn dims4(t: &TensorType) -> Option<[usize; 4]> {
    <[usize; 4]>::try_from(t.shape.dims()).ok()
}

/// Emits the attention node (with the causal triangle as a mask when cached
/// keys shift it) and returns its `[B, H, Sq, Dv]` result.
fn emit(c: &mut Ctx<'_, '_>, p: Parts) -> Res<NodeId> {
    let (tq, tk, tv) = (c.ty(p.q), c.ty(p.k), c.ty(p.v));
    let (Some([_, _, sq, d]), Some([_, _, sk, _]), Some(_)) = (dims4(&tq), dims4(&tk), dims4(&tv)) else {
        return Err(c.err(format!("q, k and v must be [batch, heads, sequence, head size], got {tq}, {tk} and {tv}")));
    };
    let scale = p.scale.unwrap_or(1.0 / (d as f32).sqrt());
    let mut mask = p.mask;
    let mut causal = p.causal;
    if causal && p.offset > 0 {
        let cm = causal_mask(c, sq, sk, p.offset, tq.dtype)?;
        mask = Some(match mask {
            Some(m) => c.add(Some("masks"), Op::Binary(BinaryOp::Add), &[m, cm])?,
            None => cm,
        });
        causal = false;
    }
    let mut args = vec![p.q, p.k, p.v];
    args.extend(mask);
    c.add(Some("attention"), Op::Attention { scale, causal }, &args)
}

/// ONNX `Attention` (opset 23+): inputs Q, K, V, [attn_mask, past_key,
/// past_value]; outputs Y, [present_key, present_value].
fn onnx_attention(c: &mut Ctx<'_, '_>) -> Res<()> {
    if c.opset() < 23 {
        return Err(c.err(format!("Attention is an opset-23 op, the model imports opset {}", c.opset())));
    }
    let (q, tq) = c.input_typed(0)?;
    let (k, tk) = c.input_typed(1)?;
    let (v, tv) = c.input_typed(2)?;
    if c.attr_float_or("softcap", 0.0)? != 0.0 {
        return Err(c.unsupported("attribute softcap is not supported"));
    }
    for (name, off) in [("left_window_size", -1), ("right_window_size", -1)] {
        if c.attr_int_or(name, off)? != off {
            return Err(c.unsupported(format!("attribute {name} is not supported")));
        }
    }
    if c.output_used(3) {
        return Err(c.unsupported("output 3 (qk_matmul_output) is not supported"));
    }
    if c.opt_input(6)?.is_some() {
        return Err(c.unsupported("input 6 (nonpad_kv_seqlen) is not supported"));
    }
    let rank = tq.shape.rank();
    if tk.shape.rank() != rank || tv.shape.rank() != rank || !(rank == 3 || rank == 4) {
        return Err(c.err(format!("Q, K and V must all be 3-D or all 4-D, got {tq}, {tk} and {tv}")));
    }
    let (qh, kvh) = (heads_attr(c, "q_num_heads")?, heads_attr(c, "kv_num_heads")?);
    let (q, mut k, mut v) = if rank == 3 {
        let (Some(qh), Some(kvh)) = (qh, kvh) else {
            return Err(c.err("3-D inputs need the q_num_heads and kv_num_heads attributes"));
        };
        (split_heads(c, q, qh, "q")?, split_heads(c, k, kvh, "k")?, split_heads(c, v, kvh, "v")?)
    } else {
        (q, k, v)
    };
    let past = match (c.opt_input(4)?, c.opt_input(5)?) {
        (None, None) => None,
        (Some(pk), Some(pv)) => Some((pk, pv)),
        _ => return Err(c.err("past_key and past_value must be given together")),
    };
    let mut offset = 0;
    if let Some((pk, pv)) = past {
        offset = c.ty(pk).shape.dims().get(2).copied().unwrap_or(0);
        k = c.add(Some("present_key"), Op::Concat { axis: 2 }, &[pk, k])?;
        v = c.add(Some("present_value"), Op::Concat { axis: 2 }, &[pv, v])?;
    }
    c.set_output(1, k);
    c.set_output(2, v);
    let dtype = tq.dtype;
    let sk = c.ty(k).shape.dims().get(2).copied().unwrap_or(0);
    let mask = match c.opt_input(3)? {
        None => None,
        Some(m) => {
            let m = additive_mask(c, m, dtype)?;
            let tm = c.ty(m);
            let last = tm.shape.dims().last().copied().unwrap_or(1);
            // A mask shorter than the keys is padded with -inf (keys it does not cover are dropped).
            Some(if tm.shape.rank() > 0 && last < sk && last != 1 {
                let r = tm.shape.rank();
                let mut pads_end = vec![0; r];
                pads_end[r - 1] = sk - last;
                let fill = c.scalar("mask_pad", dtype, f64::NEG_INFINITY)?;
                let pad = Op::Pad { mode: PadMode::Constant, pads_begin: vec![0; r], pads_end };
                c.add(Some("mask_padded"), pad, &[m, fill])?
            } else {
                m
            })
        }
    };
    let causal = c.attr_bool_or("is_causal", false)?;
    let scale = c.attr_float("scale")?;
    let y = emit(c, Parts { q, k, v, mask, scale, causal, offset })?;
    let y = if rank == 3 { merge_heads(c, y)? } else { y };
    c.set_output(0, y);
    Ok(())
}

/// A contrib op's `scale` (onnxruntime reads 0, its schema default, as
/// "not given": `1 / sqrt(head size)`).
fn contrib_scale(c: &Ctx<'_, '_>) -> Res<Option<f32>> {
    Ok(c.attr_float("scale")?.filter(|&s| s != 0.0))
}

/// onnxruntime `MultiHeadAttention`: query `[B, S, D]`, key and value
/// `[B, L, D]` (or `[B, N, L, H]`), optional bias `[3·D]`-like and
/// attention_bias; `num_heads`, `scale`, `unidirectional`.
fn multi_head_attention(c: &mut Ctx<'_, '_>) -> Res<()> {
    let heads = heads_attr(c, "num_heads")?.ok_or_else(|| c.err("attribute num_heads is required"))?;
    for (i, what) in [(4, "key_padding_mask"), (6, "past_key"), (7, "past_value"), (8, "past_sequence_length")] {
        if c.opt_input(i)?.is_some() {
            return Err(c.unsupported(format!("input {i} ({what}) is not supported")));
        }
    }
    for (i, what) in [(1, "present_key"), (2, "present_value"), (3, "qk output")] {
        if c.output_used(i) {
            return Err(c.unsupported(format!("output {i} ({what}) is not supported")));
        }
    }
    let (q, tq) = c.input_typed(0)?;
    if tq.shape.rank() != 3 {
        return Err(c.unsupported(format!(
            "query must be [batch, sequence, hidden] (packed forms are not supported), got {tq}"
        )));
    }
    let (Some(k), Some(v)) = (c.opt_input(1)?, c.opt_input(2)?) else {
        return Err(c.unsupported("packed QKV (no key/value inputs) is not supported"));
    };
    let (mut q, mut k, mut v) = (q, k, v);
    if let Some(bias) = c.opt_input(3)? {
        // bias = [q bias, k bias, v bias] along its only dim.
        let tb = c.ty(bias);
        let (dq, dk, dv) =
            (tq.shape.0[2], c.ty(k).shape.0.last().copied().unwrap_or(0), c.ty(v).shape.0.last().copied().unwrap_or(0));
        let total = dq.checked_add(dk).and_then(|n| n.checked_add(dv)).ok_or_else(|| c.err("bias size overflows"))?;
        if c.ty(k).shape.rank() != 3 || c.ty(v).shape.rank() != 3 || tb.shape.0 != [total] {
            return Err(c.err(format!("bias {tb} must be [{total}] with 3-D key and value")));
        }
        let mut start = 0;
        for (x, n, what) in [(&mut q, dq, "q_bias"), (&mut k, dk, "k_bias"), (&mut v, dv, "v_bias")] {
            let part = c.add_typed(
                Some(what),
                Op::Slice { starts: vec![start], steps: vec![1] },
                &[bias],
                TensorType::new(tb.dtype, vec![n]),
            )?;
            *x = c.add(Some(&format!("{what}_added")), Op::Binary(BinaryOp::Add), &[*x, part])?;
            start += n;
        }
    }
    let q = split_heads(c, q, heads, "q")?;
    let k = if c.ty(k).shape.rank() == 3 { split_heads(c, k, heads, "k")? } else { k };
    let v = if c.ty(v).shape.rank() == 3 { split_heads(c, v, heads, "v")? } else { v };
    let mask = c.opt_input(5)?;
    let causal = c.attr_bool_or("unidirectional", false)?;
    let (sq, sk) = (dims4(&c.ty(q)).map_or(0, |d| d[2]), dims4(&c.ty(k)).map_or(0, |d| d[2]));
    // onnxruntime aligns the triangle at the bottom right.
    let offset = match sk.checked_sub(sq) {
        Some(o) => o,
        None if causal => return Err(c.unsupported("unidirectional with more queries than keys")),
        None => 0,
    };
    let y = emit(c, Parts { q, k, v, mask, scale: contrib_scale(c)?, causal, offset })?;
    let y = merge_heads(c, y)?;
    c.set_output(0, y);
    Ok(())
}

/// onnxruntime `GroupQueryAttention`: query `[B, S, N·H]`, key/value
/// `[B, S, Nkv·H]`, an optional past cache `[B, Nkv, P, H]` (not a shared
/// buffer: `seqlens_k` must be `P + S - 1` for every batch entry, i.e. no
/// padding); always causal, aligned at the bottom right. Present outputs are
/// the caches with the new keys and values appended.
fn group_query_attention(c: &mut Ctx<'_, '_>) -> Res<()> {
    let heads = heads_attr(c, "num_heads")?.ok_or_else(|| c.err("attribute num_heads is required"))?;
    let kv_heads = heads_attr(c, "kv_num_heads")?.ok_or_else(|| c.err("attribute kv_num_heads is required"))?;
    for (name, default) in [("do_rotary", 0), ("smooth_softmax", 0), ("local_window_size", -1)] {
        if c.attr_int_or(name, default)? != default {
            return Err(c.unsupported(format!("attribute {name} is not supported")));
        }
    }
    if c.attr_float_or("softcap", 0.0)? != 0.0 {
        return Err(c.unsupported("attribute softcap is not supported"));
    }
    for (i, what) in [(7, "cos_cache"), (8, "sin_cache"), (9, "position_ids"), (10, "attention_bias")] {
        if c.opt_input(i)?.is_some() {
            return Err(c.unsupported(format!("input {i} ({what}) is not supported")));
        }
    }
    let (q, tq) = c.input_typed(0)?;
    let (Some(k), Some(v)) = (c.opt_input(1)?, c.opt_input(2)?) else {
        return Err(c.unsupported("packed QKV (no key/value inputs) is not supported"));
    };
    let [b, s, _] = <[usize; 3]>::try_from(tq.shape.dims())
        .map_err(|_| c.err(format!("query must be [batch, sequence, hidden], got {tq}")))?;
    let q = split_heads(c, q, heads, "q")?;
    let mut k = split_heads(c, k, kv_heads, "k")?;
    let mut v = split_heads(c, v, kv_heads, "v")?;
    let past = match (c.opt_input(3)?, c.opt_input(4)?) {
        (None, None) => 0,
        (Some(pk), Some(pv)) => {
            k = c.add(Some("present_key"), Op::Concat { axis: 2 }, &[pk, k])?;
            v = c.add(Some("present_value"), Op::Concat { axis: 2 }, &[pv, v])?;
            c.ty(pk).shape.dims().get(2).copied().unwrap_or(0)
        }
        _ => return Err(c.err("past_key and past_value must be given together")),
    };
    c.set_output(1, k);
    c.set_output(2, v);
    let want = past as i64 + s as i64 - 1;
    let seqlens = c.require_const_i64s(5)?;
    if seqlens.len() != b || seqlens.iter().any(|&l| l != want) {
        return Err(c.unsupported(format!(
            "seqlens_k must be {want} (past {past} + sequence {s} - 1) for every batch entry: padded batches and shared cache buffers are not supported, got {seqlens:?}"
        )));
    }
    let y = emit(c, Parts { q, k, v, mask: None, scale: contrib_scale(c)?, causal: true, offset: past })?;
    let y = merge_heads(c, y)?;
    c.set_output(0, y);
    Ok(())
}
