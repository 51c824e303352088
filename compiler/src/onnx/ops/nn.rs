//! Contractions, convolution, pooling, normalisation, softmax and reductions.

use super::super::tensor::tensor_from_f64;
use super::{Ctx, ImportFn, Res};
use nanoc_ir::{BinaryOp, NodeId, Op, ReduceKind, TensorType, Window};

/// The nn family's registration table.
pub(super) const OPS: &[(&str, ImportFn)] = &[
    ("MatMul", matmul),
    ("Gemm", gemm),
    ("Conv", conv),
    ("MaxPool", max_pool),
    ("AveragePool", avg_pool),
    ("GlobalAveragePool", global_avg_pool),
    ("BatchNormalization", batch_norm),
    ("Softmax", softmax),
    ("LayerNormalization", layer_norm),
    ("ReduceMean", |c| reduce(c, ReduceKind::Mean)),
    ("ReduceSum", |c| reduce(c, ReduceKind::Sum)),
    ("ReduceMax", |c| reduce(c, ReduceKind::Max)),
    ("LogSoftmax", log_softmax),
    ("InstanceNormalization", instance_norm),
    ("GroupNormalization", group_norm),
    ("RMSNormalization", rms_norm),
];

fn matmul(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (a, ta) = c.input_typed(0)?;
    let (b, tb) = c.input_typed(1)?;
    if ta.dtype != tb.dtype {
        return Err(c.err(format!("operands have different element types {ta} and {tb}")));
    }
    let y = c.add(None, Op::MatMul, &[a, b])?;
    c.set_output(0, y);
    Ok(())
}

/// `alpha * op(A) @ op(B) + beta * C` → [Transpose] MatMul [Mul alpha] [Add (beta*C)].
fn gemm(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (mut a, ta) = c.input_typed(0)?;
    let (mut b, tb) = c.input_typed(1)?;
    let cin = c.opt_input(2)?;
    if ta.shape.rank() != 2 || tb.shape.rank() != 2 {
        return Err(c.err(format!("A and B must be matrices, got {ta} and {tb}")));
    }
    let alpha = c.attr_float_or("alpha", 1.0)?;
    let beta = c.attr_float_or("beta", 1.0)?;
    if c.attr_bool_or("transA", false)? {
        a = c.add(Some("transpose_a"), Op::Transpose { perm: vec![1, 0] }, &[a])?;
    }
    if c.attr_bool_or("transB", false)? {
        b = c.add(Some("transpose_b"), Op::Transpose { perm: vec![1, 0] }, &[b])?;
    }
    let cin = cin.filter(|_| beta != 0.0);
    let scale = alpha != 1.0;
    let dtype = ta.dtype;
    let last_is_matmul = !scale && cin.is_none();
    let mut y = c.add(if last_is_matmul { None } else { Some("matmul") }, Op::MatMul, &[a, b])?;
    if scale {
        let k = c.scalar("alpha", dtype, alpha as f64)?;
        y = c.add(if cin.is_none() { None } else { Some("alpha_mul") }, Op::Binary(BinaryOp::Mul), &[y, k])?;
    }
    if let Some(mut bias) = cin {
        if c.ty(bias).dtype != dtype {
            return Err(c.err(format!("C has element type {} but A has {dtype}", c.ty(bias).dtype)));
        }
        if beta != 1.0 {
            let k = c.scalar("beta", dtype, beta as f64)?;
            bias = c.add(Some("beta_mul"), Op::Binary(BinaryOp::Mul), &[bias, k])?;
        }
        y = c.add(None, Op::Binary(BinaryOp::Add), &[y, bias])?;
    }
    c.set_output(0, y);
    Ok(())
}

/// Largest stride, dilation, pad or kernel extent accepted (keeps window
/// arithmetic far from overflow).
const MAX_EXTENT: i64 = u32::MAX as i64;

/// Window geometry from `strides`, `pads`, `dilations` and `auto_pad`; with
/// `ceil_mode`, `pads_end` grows so the last partial window fits (windows
/// that would start in the end padding are dropped, as ONNX specifies).
/// Returns the window and whether any `pads_end` was added.
fn window(c: &Ctx<'_, '_>, input: &[usize], kernel: Vec<usize>, ceil_mode: bool) -> Res<(Window, bool)> {
    let n = input.len();
    let positive = |name: &str| -> Res<Vec<usize>> {
        match c.attr_ints(name)? {
            None => Ok(vec![1; n]),
            Some(v) if v.len() == n && v.iter().all(|&x| x > 0 && x <= MAX_EXTENT) => {
                Ok(v.iter().map(|&x| x as usize).collect())
            }
            Some(v) => Err(c.err(format!("attribute `{name}` must have {n} positive values, got {v:?}"))),
        }
    };
    let strides = positive("strides")?;
    let dilations = positive("dilations")?;
    if kernel.len() != n || kernel.iter().any(|&k| k == 0 || k as i64 > MAX_EXTENT) {
        return Err(c.err(format!("kernel {kernel:?} must have {n} positive extents")));
    }
    let auto_pad = c.attr_string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    let (mut pads_begin, mut pads_end) = (vec![0usize; n], vec![0usize; n]);
    match auto_pad.as_str() {
        "NOTSET" => {
            if let Some(p) = c.attr_ints("pads")? {
                if p.len() != 2 * n || p.iter().any(|&x| !(0..=MAX_EXTENT).contains(&x)) {
                    return Err(c.err(format!("attribute `pads` must have {} non-negative values, got {p:?}", 2 * n)));
                }
                for i in 0..n {
                    pads_begin[i] = p[i] as usize;
                    pads_end[i] = p[n + i] as usize;
                }
            }
        }
        "VALID" => {}
        "SAME_UPPER" | "SAME_LOWER" => {
            for i in 0..n {
                let out = input[i].div_ceil(strides[i]);
                let span = dilations[i].saturating_mul(kernel[i] - 1).saturating_add(1);
                let total =
                    out.saturating_sub(1).saturating_mul(strides[i]).saturating_add(span).saturating_sub(input[i]);
                let small = total / 2;
                (pads_begin[i], pads_end[i]) =
                    if auto_pad == "SAME_UPPER" { (small, total - small) } else { (total - small, small) };
            }
        }
        other => {
            return Err(
                c.err(format!("attribute `auto_pad` must be NOTSET, VALID, SAME_UPPER or SAME_LOWER, got {other:?}"))
            );
        }
    }
    let mut extended = false;
    if ceil_mode && !auto_pad.starts_with("SAME") {
        for i in 0..n {
            let padded = input[i].saturating_add(pads_begin[i]).saturating_add(pads_end[i]);
            let span = dilations[i].saturating_mul(kernel[i] - 1).saturating_add(1);
            if padded < span || padded == usize::MAX {
                continue; // reported by the op's type inference
            }
            let mut out = (padded - span).div_ceil(strides[i]) + 1;
            if (out - 1).saturating_mul(strides[i]) >= input[i] + pads_begin[i] {
                out -= 1;
            }
            let need = (out - 1).saturating_mul(strides[i]).saturating_add(span);
            if need > padded {
                pads_end[i] += need - padded;
                extended = true;
            }
        }
    }
    Ok((Window { kernel, strides, pads_begin, pads_end, dilations }, extended))
}

/// Spatial extents of an NC[spatial] input; only 1-D and 2-D are supported.
fn spatial(c: &Ctx<'_, '_>, ty: &nanoc_ir::TensorType) -> Res<Vec<usize>> {
    let r = ty.shape.rank();
    if r < 3 {
        return Err(c.err(format!("input must be N x C x spatial..., got {ty}")));
    }
    if r > 4 {
        return Err(c.unsupported(format!("only 1-D and 2-D spatial inputs are supported, got {ty}")));
    }
    Ok(ty.shape.dims()[2..].to_vec())
}

fn conv(c: &mut Ctx<'_, '_>) -> Res<()> {
    let x = c.input(0)?;
    let w = c.input(1)?;
    let bias = c.opt_input(2)?;
    let y = conv_node(c, x, w, bias, None)?;
    c.set_output(0, y);
    Ok(())
}

/// A conv node from this node's attributes (kernel_shape, strides, pads,
/// dilations, group, auto_pad) over the given operands; shared with the
/// quantised convolutions.
pub(super) fn conv_node(
    c: &mut Ctx<'_, '_>,
    x: nanoc_ir::NodeId,
    w: nanoc_ir::NodeId,
    bias: Option<nanoc_ir::NodeId>,
    suffix: Option<&str>,
) -> Res<nanoc_ir::NodeId> {
    let (tx, tw) = (c.ty(x), c.ty(w));
    let sp = spatial(c, &tx)?;
    if tw.shape.rank() != tx.shape.rank() {
        return Err(c.err(format!("weight {tw} must have the rank of the input {tx}")));
    }
    let wk = tw.shape.dims()[2..].to_vec();
    let kernel = match c.attr_ints("kernel_shape")? {
        None => wk,
        Some(k) => {
            if k.iter().map(|&v| usize::try_from(v).ok()).collect::<Option<Vec<_>>>() != Some(wk.clone()) {
                return Err(c.err(format!("attribute `kernel_shape` {k:?} does not match the weight {tw}")));
            }
            wk
        }
    };
    let group = c.attr_int_or("group", 1)?;
    let channels = tx.shape.dims()[1];
    let group = usize::try_from(group).ok().filter(|&g| g > 0 && g <= channels.max(1)).ok_or_else(|| {
        c.err(format!("attribute `group` must be between 1 and the {channels} input channels, got {group}"))
    })?;
    let (window, _) = window(c, &sp, kernel, false)?;
    let mut args = vec![x, w];
    args.extend(bias);
    c.add(suffix, Op::Conv { window, group }, &args)
}

fn pool_kernel(c: &Ctx<'_, '_>) -> Res<Vec<usize>> {
    let k = c.attr_ints("kernel_shape")?.ok_or_else(|| c.err("attribute `kernel_shape` is required"))?;
    k.iter()
        .map(|&v| usize::try_from(v).ok().filter(|&v| v > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| c.err(format!("attribute `kernel_shape` must be positive, got {k:?}")))
}

fn max_pool(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    if !tx.dtype.is_float() {
        return Err(c.unsupported(format!("MaxPool of {} (nanoc pools floats only)", tx.dtype)));
    }
    let sp = spatial(c, &tx)?;
    if c.attr_int_or("storage_order", 0)? != 0 {
        return Err(c.unsupported("attribute `storage_order` must be 0"));
    }
    if c.output_used(1) {
        return Err(c.unsupported("output 1 (Indices) is used, but nanoc does not compute it"));
    }
    let ceil_mode = c.attr_bool_or("ceil_mode", false)?;
    let kernel = pool_kernel(c)?;
    let (window, _) = window(c, &sp, kernel, ceil_mode)?;
    let y = c.add(None, Op::MaxPool { window }, &[x])?;
    c.set_output(0, y);
    Ok(())
}

fn avg_pool(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let sp = spatial(c, &tx)?;
    let ceil_mode = c.attr_bool_or("ceil_mode", false)?;
    let count_include_pad = c.attr_bool_or("count_include_pad", false)?;
    let kernel = pool_kernel(c)?;
    let (window, extended) = window(c, &sp, kernel, ceil_mode)?;
    if extended && count_include_pad {
        return Err(c.unsupported(
            "ceil_mode with count_include_pad where the last window overhangs the padding (its divisor would count cells past the padding)",
        ));
    }
    let y = c.add(None, Op::AvgPool { window, count_include_pad }, &[x])?;
    c.set_output(0, y);
    Ok(())
}

fn global_avg_pool(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let r = tx.shape.rank();
    if r < 3 {
        return Err(c.err(format!("input must be N x C x spatial..., got {tx}")));
    }
    let y = c.add(None, Op::Reduce { kind: ReduceKind::Mean, axes: (2..r).collect(), keep_dims: true }, &[x])?;
    c.set_output(0, y);
    Ok(())
}

/// Batch norm whose statistics or affine parameters are computed at run
/// time: `(x - mean) * (gamma / sqrt(var + eps)) + beta`, each per-channel
/// vector reshaped to `channel_shape` (`[C, 1, ...]`) to broadcast over x.
fn batch_norm_runtime(
    c: &mut Ctx<'_, '_>,
    x: NodeId,
    params: &[NodeId],
    eps: f64,
    channel_shape: Vec<usize>,
) -> Res<()> {
    let dt = c.ty(x).dtype;
    let ch = channel_shape.first().copied().unwrap_or(0);
    let mut per_channel = Vec::new();
    for (&id, what) in params.iter().zip(["scale", "B", "input_mean", "input_var"]) {
        let t = c.ty(id);
        if t.dtype != dt || t.shape.dims() != [ch] {
            return Err(c.err(format!("{what} must be {dt}[{ch}] (one value per channel), got {t}")));
        }
        per_channel.push(c.add_typed(Some(what), Op::Reshape, &[id], TensorType::new(dt, channel_shape.clone()))?);
    }
    let [g, b, m, v] = per_channel[..] else { return Err(c.err("needs 5 inputs")) };
    let e = c.scalar("epsilon", dt, eps)?;
    let ve = c.add(Some("var_eps"), Op::Binary(BinaryOp::Add), &[v, e])?;
    let sd = c.add(Some("std"), Op::Unary(nanoc_ir::UnaryOp::Sqrt), &[ve])?;
    let scale = c.add(Some("scale_per_channel"), Op::Binary(BinaryOp::Div), &[g, sd])?;
    let centred = c.add(Some("centred"), Op::Binary(BinaryOp::Sub), &[x, m])?;
    let scaled = c.add(Some("mul"), Op::Binary(BinaryOp::Mul), &[centred, scale])?;
    let y = c.add(None, Op::Binary(BinaryOp::Add), &[scaled, b])?;
    c.set_output(0, y);
    Ok(())
}

/// Inference batch norm → `x * scale + shift` with per-channel constants
/// `scale = gamma / sqrt(var + eps)` and `shift = beta - mean * scale`.
fn batch_norm(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    if c.attr_int_or("training_mode", 0)? != 0 {
        return Err(c.unsupported("training_mode 1 (only inference batch normalization is supported)"));
    }
    let eps = c.attr_float_or("epsilon", 1e-5)? as f64;
    let r = tx.shape.rank();
    if r < 2 {
        return Err(c.err(format!("input must be N x C x ..., got {tx}")));
    }
    let ch = tx.shape.dims()[1];
    let mut shape = vec![ch];
    shape.extend(std::iter::repeat_n(1, r - 2));
    let ids = (1..5).map(|i| c.input(i)).collect::<Res<Vec<_>>>()?;
    if !ids.iter().all(|&id| c.is_const(id)) {
        return batch_norm_runtime(c, x, &ids, eps, shape);
    }
    let mut params = Vec::new();
    for (i, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
        let v = c.require_const(i)?.to_f64_vec();
        if v.len() != ch {
            return Err(c.err(format!("{what} must have {ch} values (one per channel), got {}", v.len())));
        }
        params.push(v);
    }
    let (g, b, m, v) = (&params[0], &params[1], &params[2], &params[3]);
    let scale: Vec<f64> = (0..ch).map(|i| g[i] / (v[i] + eps).sqrt()).collect();
    let shift: Vec<f64> = (0..ch).map(|i| b[i] - m[i] * scale[i]).collect();
    let st = tensor_from_f64(tx.dtype, shape.clone(), &scale).map_err(|m| c.err(m))?;
    let sh = tensor_from_f64(tx.dtype, shape, &shift).map_err(|m| c.err(m))?;
    let st = c.add_const(Some("scale"), st);
    let sh = c.add_const(Some("shift"), sh);
    let mul = c.add(Some("mul"), Op::Binary(BinaryOp::Mul), &[x, st])?;
    let y = c.add(None, Op::Binary(BinaryOp::Add), &[mul, sh])?;
    c.set_output(0, y);
    Ok(())
}

fn softmax(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let axis = c.axis(c.attr_int_or("axis", -1)?, tx.shape.rank(), "axis")?;
    let y = c.add(None, Op::Softmax { axis }, &[x])?;
    c.set_output(0, y);
    Ok(())
}

fn layer_norm(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let scale = c.input(1)?;
    let bias = c.opt_input(2)?;
    let axis = c.axis(c.attr_int_or("axis", -1)?, tx.shape.rank(), "axis")?;
    let epsilon = c.attr_float_or("epsilon", 1e-5)?;
    let mut args = vec![x, scale];
    args.extend(bias);
    let y = c.add(None, Op::LayerNorm { axis, epsilon }, &args)?;
    c.set_output(0, y);
    // The optional statistics outputs, computed separately when used:
    // Mean and 1/sqrt(var + epsilon) over the normalised dims (kept as 1s).
    if c.output_used(1) || c.output_used(2) {
        let axes: Vec<usize> = (axis..tx.shape.rank()).collect();
        let mean_op = Op::Reduce { kind: ReduceKind::Mean, axes, keep_dims: true };
        let mean = c.add(Some("mean"), mean_op.clone(), &[x])?;
        c.set_output(1, mean);
        let d = c.add(Some("centered"), Op::Binary(BinaryOp::Sub), &[x, mean])?;
        let sq = c.add(Some("squared"), Op::Binary(BinaryOp::Mul), &[d, d])?;
        let var = c.add(Some("variance"), mean_op, &[sq])?;
        let eps = c.scalar("epsilon", tx.dtype, epsilon as f64)?;
        let ve = c.add(Some("variance_eps"), Op::Binary(BinaryOp::Add), &[var, eps])?;
        let sd = c.add(Some("std"), Op::Unary(nanoc_ir::UnaryOp::Sqrt), &[ve])?;
        let inv = c.add(Some("inv_std"), Op::Unary(nanoc_ir::UnaryOp::Reciprocal), &[sd])?;
        c.set_output(2, inv);
    }
    Ok(())
}

/// ReduceMean/Sum/Max. Axes come from input 1 for ReduceSum (opset 13+) and
/// for all three from opset 18, else from the `axes` attribute. Empty axes
/// reduce everything, unless `noop_with_empty_axes` makes it the identity.
fn reduce(c: &mut Ctx<'_, '_>, kind: ReduceKind) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let keep_dims = c.attr_bool_or("keepdims", true)?;
    let noop = c.attr_bool_or("noop_with_empty_axes", false)?;
    let axes_from_input = kind == ReduceKind::Sum || c.opset() >= 18;
    let axes = if axes_from_input { c.opt_const_i64s(1)? } else { c.attr_ints("axes")? };
    let r = tx.shape.rank();
    let mut axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a.iter().map(|&a| c.axis(a, r, "axis")).collect::<Res<_>>()?,
        _ if noop => {
            c.set_output(0, x);
            return Ok(());
        }
        _ => (0..r).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    let y = c.add(None, Op::Reduce { kind, axes, keep_dims }, &[x])?;
    c.set_output(0, y);
    Ok(())
}

/// `x - max - log(sum(exp(x - max)))` along `axis` (stable).
fn log_softmax(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let axis = c.axis(c.attr_int_or("axis", -1)?, tx.shape.rank(), "axis")?;
    let red = |kind| Op::Reduce { kind, axes: vec![axis], keep_dims: true };
    let m = c.add(Some("max"), red(ReduceKind::Max), &[x])?;
    let d = c.add(Some("shifted"), Op::Binary(BinaryOp::Sub), &[x, m])?;
    let e = c.add(Some("exp"), Op::Unary(nanoc_ir::UnaryOp::Exp), &[d])?;
    let s = c.add(Some("sum"), red(ReduceKind::Sum), &[e])?;
    let l = c.add(Some("log"), Op::Unary(nanoc_ir::UnaryOp::Log), &[s])?;
    let y = c.add(None, Op::Binary(BinaryOp::Sub), &[d, l])?;
    c.set_output(0, y);
    Ok(())
}

/// Normalises `x` over dims `axis..` without affine parameters (a layer
/// norm with scale 1), for the instance/group norm decompositions.
fn plain_norm(c: &mut Ctx<'_, '_>, x: nanoc_ir::NodeId, axis: usize, epsilon: f32) -> Res<nanoc_ir::NodeId> {
    let dt = c.ty(x).dtype;
    let one = c.scalar("one", dt, 1.0)?;
    c.add(Some("normalized"), Op::LayerNorm { axis, epsilon }, &[x, one])
}

/// Multiplies by `scale` and adds `bias`, both per channel (dim 1) of `x`.
fn per_channel_affine(
    c: &mut Ctx<'_, '_>,
    x: nanoc_ir::NodeId,
    scale: nanoc_ir::NodeId,
    bias: Option<nanoc_ir::NodeId>,
) -> Res<nanoc_ir::NodeId> {
    let tx = c.ty(x);
    let ch = tx.shape.0.get(1).copied().unwrap_or(1);
    let mut shape = vec![ch];
    shape.extend(std::iter::repeat_n(1, tx.shape.rank().saturating_sub(2)));
    let as_column = |c: &mut Ctx<'_, '_>, v: nanoc_ir::NodeId, what: &str| -> Res<nanoc_ir::NodeId> {
        let tv = c.ty(v);
        if tv.shape.numel() != ch {
            return Err(c.err(format!("{what} must have {ch} elements (one per channel), got {tv}")));
        }
        let ty = nanoc_ir::TensorType::new(tv.dtype, shape.clone());
        c.add_typed(Some(&format!("{what}_column")), Op::Reshape, &[v], ty)
    };
    let s = as_column(c, scale, "scale")?;
    let mut y = c.add(Some("scaled"), Op::Binary(BinaryOp::Mul), &[x, s])?;
    if let Some(b) = bias {
        let b = as_column(c, b, "bias")?;
        y = c.add(None, Op::Binary(BinaryOp::Add), &[y, b])?;
    }
    Ok(y)
}

/// InstanceNormalization: normalise each (n, c) over the spatial dims, then
/// per-channel scale and bias.
fn instance_norm(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    if tx.shape.rank() < 3 {
        return Err(c.err(format!("input must be N x C x D1 ..., got {tx}")));
    }
    let eps = c.attr_float_or("epsilon", 1e-5)?;
    let (scale, bias) = (c.input(1)?, c.input(2)?);
    let n = plain_norm(c, x, 2, eps)?;
    let y = per_channel_affine(c, n, scale, Some(bias))?;
    c.set_output(0, y);
    Ok(())
}

/// GroupNormalization: reshape to [N, G, C/G * spatial], normalise each
/// group, reshape back, per-channel scale and bias (opset 21 semantics; the
/// opset-18 per-group scale/bias are expanded when they are constants).
fn group_norm(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let eps = c.attr_float_or("epsilon", 1e-5)?;
    let groups = c.attr_int("num_groups")?.ok_or_else(|| c.err("missing attribute `num_groups`"))?;
    let d = &tx.shape.0;
    if d.len() < 3 || groups <= 0 || d[1] % groups as usize != 0 {
        return Err(c.err(format!("num_groups {groups} must divide the channels of {tx}")));
    }
    let g = groups as usize;
    let rest: usize = d[1..].iter().product::<usize>() / g;
    let grouped = nanoc_ir::TensorType::new(tx.dtype, vec![d[0], g, rest]);
    let xg = c.add_typed(Some("grouped"), Op::Reshape, &[x], grouped)?;
    let n = plain_norm(c, xg, 2, eps)?;
    let back = c.add_typed(Some("ungrouped"), Op::Reshape, &[n], tx.clone())?;
    let mut params = Vec::new();
    for i in [1, 2] {
        let p = c.input(i)?;
        let tp = c.ty(p);
        if tp.shape.numel() == g && g != d[1] {
            let Some(t) = c.const_input(i).cloned() else {
                return Err(c.err("per-group scale/bias (opset 18) must be constants"));
            };
            let per = d[1] / g;
            let v: Vec<f64> = t.to_f64_vec().into_iter().flat_map(|v| std::iter::repeat_n(v, per)).collect();
            let t = tensor_from_f64(tp.dtype, vec![d[1]], &v).map_err(|m| c.err(m))?;
            params.push(c.add_const(Some(if i == 1 { "scale_per_channel" } else { "bias_per_channel" }), t));
        } else {
            params.push(p);
        }
    }
    let y = per_channel_affine(c, back, params[0], Some(params[1]))?;
    c.set_output(0, y);
    Ok(())
}

/// RMSNormalization (opset 23): `x / sqrt(mean(x^2 over axis..) + eps) * scale`,
/// one `rms_norm` node (`stash_type` is moot: the reference computes in f64,
/// the CPU kernel in f32).
fn rms_norm(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, tx) = c.input_typed(0)?;
    let scale = c.input(1)?;
    let axis = c.axis(c.attr_int_or("axis", -1)?, tx.shape.rank(), "axis")?;
    let eps = c.attr_float_or("epsilon", 1e-5)?;
    let y = super::contrib::rms(c, x, scale, axis, eps)?;
    c.set_output(0, y);
    Ok(())
}
