//! Contrib ops of onnxruntime (domain `com.microsoft`) that LLM and
//! transformer exports contain, imported by decomposition into IR ops
//! (the RMS normalisations into `rms_norm`).

use super::{Ctx, ImportFn, Res};
use nanoc_ir::{BinaryOp, DType, NodeId, Op, Tensor, TensorType, UnaryOp};

/// The contrib ops' domain.
pub(super) const DOMAIN: &str = "com.microsoft";

/// onnxruntime's own ops that it registers in the default ONNX domain.
pub(super) const ORT_DEFAULT_DOMAIN_OPS: &[(&str, ImportFn)] = &[
    ("SimplifiedLayerNormalization", simplified_layer_norm),
    // ONNX's own RotaryEmbedding (opset 23): inputs (X, cos, sin, [position_ids]).
    ("RotaryEmbedding", |c| rotary_embedding(c, false)),
];

/// The contrib family's registration table (domain [`DOMAIN`]).
pub(super) const OPS: &[(&str, ImportFn)] = &[
    ("Gelu", |c| gelu_of_sum(c, UnaryOp::Gelu)),
    ("BiasGelu", |c| gelu_of_sum(c, UnaryOp::Gelu)),
    ("FastGelu", |c| gelu_of_sum(c, UnaryOp::GeluTanh)),
    ("QuickGelu", quick_gelu),
    ("SkipLayerNormalization", |c| skip_layer_norm(c, false)),
    ("SkipSimplifiedLayerNormalization", |c| skip_layer_norm(c, true)),
    ("MatMulNBits", matmul_nbits),
    // Inputs (X, position_ids, cos, sin).
    ("RotaryEmbedding", |c| rotary_embedding(c, true)),
];

/// `gelu(x [+ bias])` (Gelu has one input, BiasGelu and FastGelu two).
fn gelu_of_sum(c: &mut Ctx<'_, '_>, op: UnaryOp) -> Res<()> {
    let mut x = c.input(0)?;
    if let Some(b) = c.opt_input(1)? {
        x = c.add(Some("biased"), Op::Binary(BinaryOp::Add), &[x, b])?;
    }
    let y = c.add(None, Op::Unary(op), &[x])?;
    c.set_output(0, y);
    Ok(())
}

/// `x * sigmoid(alpha * x)`.
fn quick_gelu(c: &mut Ctx<'_, '_>) -> Res<()> {
    let x = c.input(0)?;
    let dt = c.ty(x).dtype;
    let alpha = c.attr_float_or("alpha", 1.702)?;
    let a = c.scalar("alpha", dt, alpha as f64)?;
    let ax = c.add(Some("scaled"), Op::Binary(BinaryOp::Mul), &[x, a])?;
    let s = c.add(Some("sigmoid"), Op::Unary(UnaryOp::Sigmoid), &[ax])?;
    let y = c.add(None, Op::Binary(BinaryOp::Mul), &[x, s])?;
    c.set_output(0, y);
    Ok(())
}

/// RMS normalisation over dims `axis..`: `x / sqrt(mean(x^2) + eps) * scale`,
/// one `rms_norm` node.
pub(super) fn rms(c: &mut Ctx<'_, '_>, x: NodeId, scale: NodeId, axis: usize, eps: f32) -> Res<NodeId> {
    c.add(None, Op::RmsNorm { axis, epsilon: eps }, &[x, scale])
}

fn no_stats_outputs(c: &Ctx<'_, '_>, outputs: &[(usize, &str)]) -> Res<()> {
    for &(i, what) in outputs {
        if c.output_used(i) {
            return Err(c.unsupported(format!("output {i} ({what}) is used, but nanoc does not compute it")));
        }
    }
    Ok(())
}

/// SimplifiedLayerNormalization: RMSNorm (axis default -1, epsilon 1e-5).
fn simplified_layer_norm(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let scale = c.input(1)?;
    let axis = c.axis(c.attr_int_or("axis", -1)?, tx.shape.rank(), "axis")?;
    let eps = c.attr_float_or("epsilon", 1e-5)?;
    no_stats_outputs(c, &[(1, "inv_std_var")])?;
    let y = rms(c, x, scale, axis, eps)?;
    c.set_output(0, y);
    Ok(())
}

/// SkipLayerNormalization / SkipSimplifiedLayerNormalization: `s = input +
/// skip [+ bias]`, then layer norm (gamma, beta) or RMS norm (gamma) over
/// the last dim; output 3 is `s`.
fn skip_layer_norm(c: &mut Ctx<'_, '_>, simplified: bool) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let skip = c.input(1)?;
    let gamma = c.input(2)?;
    let (beta, bias) = if simplified { (None, c.opt_input(3)?) } else { (c.opt_input(3)?, c.opt_input(4)?) };
    let eps = c.attr_float_or("epsilon", 1e-12)?;
    no_stats_outputs(c, &[(1, "mean"), (2, "inv_std_var")])?;
    let mut s = c.add(Some("skip_sum"), Op::Binary(BinaryOp::Add), &[x, skip])?;
    if let Some(b) = bias {
        s = c.add(Some("bias_sum"), Op::Binary(BinaryOp::Add), &[s, b])?;
    }
    let axis = tx.shape.rank().checked_sub(1).ok_or_else(|| c.err("input must have rank >= 1"))?;
    let y = if simplified {
        rms(c, s, gamma, axis, eps)?
    } else {
        let mut args = vec![s, gamma];
        args.extend(beta);
        c.add(None, Op::LayerNorm { axis, epsilon: eps }, &args)?
    };
    c.set_output(0, y);
    c.set_output(3, s);
    Ok(())
}

/// Unpacks `count` little-endian `bits`-bit unsigned values from each row
/// of `packed` (rows of `row_bytes` bytes), low bits first.
fn unpack_rows(packed: &[u8], rows: usize, row_bytes: usize, count: usize, bits: usize) -> Option<Vec<u8>> {
    let per_byte = 8 / bits;
    let mask = ((1u16 << bits) - 1) as u8;
    let mut out = Vec::with_capacity(rows.checked_mul(count)?);
    for r in 0..rows {
        let start = r.checked_mul(row_bytes)?;
        let row = packed.get(start..start.checked_add(row_bytes)?)?;
        for i in 0..count {
            let byte = *row.get(i / per_byte)?;
            out.push((byte >> ((i % per_byte) * bits)) & mask);
        }
    }
    Some(out)
}

/// Packs `bits`-bit values (one per byte, rows of `count`) into rows of
/// `ceil(count * bits / 8)` bytes, low bits first: `qmatmul_block`'s layout.
fn pack_rows(values: &[u8], count: usize, bits: usize) -> Vec<u8> {
    let per_byte = 8 / bits;
    let row_bytes = count.saturating_mul(bits).div_ceil(8);
    let mut out = vec![0u8; (values.len() / count.max(1)).saturating_mul(row_bytes)];
    for (r, row) in values.chunks(count.max(1)).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            if let Some(byte) = out.get_mut(r * row_bytes + i / per_byte) {
                *byte |= v << ((i % per_byte) * bits);
            }
        }
    }
    out
}

/// MatMulNBits: `A @ dequantize(B)^T [+ bias]` with B holding `bits`-bit
/// (2, 4 or 8) unsigned values in blocks of `block_size` along K, one
/// scale (and optional packed zero point, default `2^(bits-1)`) per block.
/// Imported into one `qmatmul_block`: B is repacked at import from
/// onnxruntime's padded blocks to rows of K values, the zero points
/// unpacked to one per byte; the weights stay `bits` wide in the bundle.
fn matmul_nbits(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (a, ta) = c.input_typed(0)?;
    let get = |c: &Ctx<'_, '_>, name: &str| -> Res<usize> {
        let v = c.attr_int(name)?.ok_or_else(|| c.err(format!("missing attribute `{name}`")))?;
        usize::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| c.err(format!("attribute `{name}` must be positive")))
    };
    let (k, n, block) = (get(c, "K")?, get(c, "N")?, get(c, "block_size")?);
    let bits = c.attr_int_or("bits", 4)?;
    let bits = match bits {
        2 | 4 | 8 => bits as usize,
        _ => return Err(c.unsupported(format!("bits={bits} (nanoc supports 2, 4 and 8)"))),
    };
    if c.opt_input(4)?.is_some() {
        return Err(c.unsupported("input g_idx (act-order) is not supported"));
    }
    if ta.shape.dims().last() != Some(&k) {
        return Err(c.err(format!("input A {ta} must have K = {k} as its last dim")));
    }
    let k_blocks = k.div_ceil(block);
    // Sizes come from the file: checked arithmetic, compared with the data
    // actually present before anything is allocated.
    let too_big =
        |c: &Ctx<'_, '_>| c.err(format!("K={k}, N={n}, block_size={block} describe a weight too large to address"));
    let blob = block.checked_mul(bits).ok_or_else(|| too_big(c))? / 8;
    let row_len = k_blocks.checked_mul(blob).ok_or_else(|| too_big(c))?;
    let b_len = n.checked_mul(row_len).ok_or_else(|| too_big(c))?;
    let n_scales = n.checked_mul(k_blocks).ok_or_else(|| too_big(c))?;
    let b = c.require_const(1)?;
    if b.dtype() != DType::U8 || b.shape().numel() != b_len {
        return Err(c.err(format!("B must be u8 [{n}, {k_blocks}, {blob}], got {}", b.ty())));
    }
    let q = unpack_rows(b.bytes(), n, row_len, k, bits).ok_or_else(|| c.err("B is too short"))?;
    let packed_row = k.checked_mul(bits).ok_or_else(|| too_big(c))?.div_ceil(8);
    let q = Tensor::from_vec(vec![n, packed_row], pack_rows(&q, k, bits)).map_err(|e| c.err(e.to_string()))?;
    let qb = c.add_const(Some("weights"), q);
    let scales = c.require_const(2)?;
    if scales.dtype() != DType::F32 || scales.shape().numel() != n_scales {
        return Err(c.err(format!("scales must be f32 with {n}x{k_blocks} elements, got {}", scales.ty())));
    }
    let scales = scales.reshaped(vec![n, k_blocks]).map_err(|e| c.err(e.to_string()))?;
    let zp = match c.opt_input(3)? {
        Some(_) => {
            let z = c.require_const(3)?;
            if z.dtype() != DType::U8 {
                return Err(c.unsupported(format!("zero points of type {} (nanoc reads packed u8)", z.dtype())));
            }
            let row_bytes = k_blocks.checked_mul(bits).ok_or_else(|| too_big(c))?.div_ceil(8);
            if Some(z.shape().numel()) != n.checked_mul(row_bytes) {
                return Err(c.err(format!("zero points must have {n}x{row_bytes} bytes, got {}", z.ty())));
            }
            let zp = unpack_rows(z.bytes(), n, row_bytes, k_blocks, bits)
                .ok_or_else(|| c.err("zero points are too short"))?;
            Some(Tensor::from_vec(vec![n, k_blocks], zp).map_err(|e| c.err(e.to_string()))?)
        }
        // qmatmul_block's default zero point is MatMulNBits' own, 2^(bits-1).
        None => None,
    };
    let mut args = vec![a, qb, c.add_const(Some("scales"), scales)];
    args.extend(zp.map(|z| c.add_const(Some("zero_points"), z)));
    let bias = c.opt_input(5)?;
    let op = Op::QMatMulBlock { bits, block };
    let mut y = c.add(bias.map(|_| "matmul"), op, &args)?;
    if let Some(bias) = bias {
        y = c.add(None, Op::Binary(BinaryOp::Add), &[y, bias])?;
    }
    c.set_output(0, y);
    Ok(())
}

/// A slice of the last dim of `x`: `count` elements from `start` with `step`.
fn slice_last(c: &mut Ctx<'_, '_>, suffix: &str, x: NodeId, start: usize, count: usize, step: i64) -> Res<NodeId> {
    let t = c.ty(x);
    let r = t.shape.rank();
    let mut starts = vec![0; r];
    let mut steps = vec![1; r];
    starts[r - 1] = start;
    steps[r - 1] = step;
    let mut shape = t.shape.0.clone();
    shape[r - 1] = count;
    c.add_typed(Some(suffix), Op::Slice { starts, steps }, &[x], TensorType::new(t.dtype, shape))
}

/// `x` with its shape replaced (same elements).
fn reshape(c: &mut Ctx<'_, '_>, suffix: &str, x: NodeId, shape: Vec<usize>) -> Res<NodeId> {
    let dt = c.ty(x).dtype;
    c.add_typed(Some(suffix), Op::Reshape, &[x], TensorType::new(dt, shape))
}

/// Rotary position embedding, ONNX opset 23 (`microsoft = false`: inputs X,
/// cos_cache, sin_cache, [position_ids]) or com.microsoft (inputs X,
/// position_ids, cos_cache, sin_cache; position_ids may be a one-element
/// offset). X is [batch, heads, seq, head] or [batch, seq, hidden] (with
/// `num_heads`); the first `rotary_embedding_dim` channels of each head
/// rotate, as halves or as interleaved pairs; the rest pass through.
/// Decomposed into gather/slice/mul/add/concat on a [batch, seq, heads, head] view.
fn rotary_embedding(c: &mut Ctx<'_, '_>, microsoft: bool) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let (cos, sin, pos) = if microsoft {
        (c.input(2)?, c.input(3)?, Some(c.input(1)?))
    } else {
        (c.input(1)?, c.input(2)?, c.opt_input(3)?)
    };
    if microsoft && c.attr_float_or("scale", 1.0)? != 1.0 {
        return Err(c.unsupported("attribute `scale` other than 1"));
    }
    if c.attr_int_or("is_packed_batching", 0)? != 0 {
        return Err(c.unsupported("packed batching"));
    }
    let interleaved = c.attr_bool_or("interleaved", false)?;
    let d = &tx.shape.0;
    // View as [b, s, h, head].
    let (b, s, h, head, x4) = match d.len() {
        4 => {
            let (b, h, s, head) = (d[0], d[1], d[2], d[3]);
            let t = c.add(Some("bshd"), Op::Transpose { perm: vec![0, 2, 1, 3] }, &[x])?;
            (b, s, h, head, t)
        }
        3 => {
            let nh =
                c.attr_int("num_heads")?.filter(|&n| n > 0).ok_or_else(|| c.err("a 3-D input needs `num_heads`"))?;
            let nh = nh as usize;
            if d[2] % nh != 0 {
                return Err(c.err(format!("hidden size {} is not a multiple of num_heads {nh}", d[2])));
            }
            let t = reshape(c, "bshd", x, vec![d[0], d[1], nh, d[2] / nh])?;
            (d[0], d[1], nh, d[2] / nh, t)
        }
        _ => return Err(c.err(format!("input must be 3-D or 4-D, got {tx}"))),
    };
    let rd = match c.attr_int_or("rotary_embedding_dim", 0)? {
        0 => head,
        v if v > 0 && (v as usize) <= head && v % 2 == 0 => v as usize,
        v => return Err(c.err(format!("rotary_embedding_dim {v} must be even and at most the head size {head}"))),
    };
    let half = rd / 2;
    // cos/sin as [b, s, 1, half].
    let cache = |c: &mut Ctx<'_, '_>, what: &str, table: NodeId| -> Res<NodeId> {
        let t = match pos {
            Some(p) => {
                let tp = c.ty(p);
                let ids = if microsoft && tp.shape.numel() == 1 {
                    // Offset form: positions offset .. offset + s.
                    let off = c.require_const(1)?.to_i64_vec().map_err(|e| c.err(e.to_string()))?;
                    let base = off.first().copied().unwrap_or(0);
                    let v: Vec<i64> = (0..b * s).map(|i| base + (i % s) as i64).collect();
                    let t = nanoc_ir::Tensor::from_vec(vec![b, s], v).map_err(|e| c.err(e.to_string()))?;
                    c.add_const(Some("position_ids"), t)
                } else {
                    p
                };
                c.add(Some(&format!("{what}_gathered")), Op::Gather { axis: 0 }, &[table, ids])?
            }
            None => table,
        };
        let tt = c.ty(t);
        if tt.shape.0 != [b, s, half] {
            return Err(c.err(format!("{what} cache gives {tt}, expected [{b}, {s}, {half}]")));
        }
        reshape(c, &format!("{what}_bs1d"), t, vec![b, s, 1, half])
    };
    let cos = cache(c, "cos", cos)?;
    let sin = cache(c, "sin", sin)?;
    let (x1, x2) = if interleaved {
        (slice_last(c, "x_even", x4, 0, half, 2)?, slice_last(c, "x_odd", x4, 1, half, 2)?)
    } else {
        (slice_last(c, "x_first", x4, 0, half, 1)?, slice_last(c, "x_second", x4, half, half, 1)?)
    };
    let mul = |c: &mut Ctx<'_, '_>, n: &str, a, b| c.add(Some(n), Op::Binary(BinaryOp::Mul), &[a, b]);
    let (a, bb) = (mul(c, "x1_cos", x1, cos)?, mul(c, "x2_sin", x2, sin)?);
    let o1 = c.add(Some("rotated_first"), Op::Binary(BinaryOp::Sub), &[a, bb])?;
    let (a, bb) = (mul(c, "x2_cos", x2, cos)?, mul(c, "x1_sin", x1, sin)?);
    let o2 = c.add(Some("rotated_second"), Op::Binary(BinaryOp::Add), &[a, bb])?;
    let rot = if interleaved {
        let o1 = reshape(c, "pairs_first", o1, vec![b, s, h, half, 1])?;
        let o2 = reshape(c, "pairs_second", o2, vec![b, s, h, half, 1])?;
        let p = c.add(Some("pairs"), Op::Concat { axis: 4 }, &[o1, o2])?;
        reshape(c, "interleaved", p, vec![b, s, h, rd])?
    } else {
        c.add(Some("halves"), Op::Concat { axis: 3 }, &[o1, o2])?
    };
    let y4 = if rd < head {
        let rest = slice_last(c, "pass_through", x4, rd, head - rd, 1)?;
        c.add(Some("with_pass_through"), Op::Concat { axis: 3 }, &[rot, rest])?
    } else {
        rot
    };
    let y = if d.len() == 4 {
        c.add(None, Op::Transpose { perm: vec![0, 2, 1, 3] }, &[y4])?
    } else {
        reshape(c, "restored", y4, d.to_vec())?
    };
    c.set_output(0, y);
    Ok(())
}
