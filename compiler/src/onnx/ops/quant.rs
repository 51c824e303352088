//! Quantisation: QuantizeLinear/DequantizeLinear (per tensor, per axis,
//! blocked; the QDQ form onnxruntime's quantiser writes), dynamic
//! quantisation, and the integer/QLinear matmul and convolution ops, all
//! imported into the IR's `quantize`/`dequantize` plus float or integer
//! arithmetic.

use super::{Ctx, ImportFn, Res};
use nanoc_ir::{BinaryOp, DType, NodeId, Op, ReduceKind, TensorType, UnaryOp};

/// The quantisation family's registration table.
pub(super) const OPS: &[(&str, ImportFn)] = &[
    ("QuantizeLinear", quantize_linear),
    ("DequantizeLinear", dequantize_linear),
    ("DynamicQuantizeLinear", dynamic_quantize_linear),
    ("MatMulInteger", matmul_integer),
    ("ConvInteger", conv_integer),
    ("QLinearMatMul", qlinear_matmul),
    ("QLinearConv", qlinear_conv),
];

/// The quantisation axis and block size from the `axis` (default 1) and
/// `block_size` (default 0) attributes. Per-tensor parameters (one
/// element) ignore the axis, which may then be out of range for `x`.
fn axis_block(c: &Ctx<'_, '_>, x: NodeId, scale: NodeId) -> Res<(usize, usize)> {
    let rank = c.ty(x).shape.rank();
    let block = usize::try_from(c.attr_int_or("block_size", 0)?)
        .map_err(|_| c.err("attribute `block_size` must not be negative"))?;
    if c.ty(scale).shape.numel() == 1 {
        return Ok((0, 0));
    }
    let axis = c.axis(c.attr_int_or("axis", 1)?, rank, "axis")?;
    Ok((axis, block))
}

fn dequant(
    c: &mut Ctx<'_, '_>,
    suffix: &str,
    x: NodeId,
    scale: NodeId,
    zp: Option<NodeId>,
    axis: usize,
) -> Res<NodeId> {
    let mut args = vec![x, scale];
    args.extend(zp);
    c.add(Some(suffix), Op::Dequantize { axis, block: 0 }, &args)
}

fn quant(c: &mut Ctx<'_, '_>, x: NodeId, scale: NodeId, zp: Option<NodeId>, axis: usize, to: DType) -> Res<NodeId> {
    let mut args = vec![x, scale];
    args.extend(zp);
    c.add(None, Op::Quantize { axis, block: 0, to }, &args)
}

fn quantize_linear(c: &mut Ctx<'_, '_>) -> Res<()> {
    let x = c.input(0)?;
    let scale = c.input(1)?;
    let zp = c.opt_input(2)?;
    let (axis, block) = axis_block(c, x, scale)?;
    let to = match zp {
        Some(z) => c.ty(z).dtype,
        None => match c.attr_int("output_dtype")? {
            None | Some(0) | Some(2) => DType::U8,
            Some(3) => DType::I8,
            Some(t) => return Err(c.unsupported(format!("output_dtype {t} (nanoc quantises to i8 and u8)"))),
        },
    };
    if c.attr_int_or("saturate", 1)? != 1 {
        return Err(c.unsupported("saturate=0 (only meaningful for float8)"));
    }
    let mut args = vec![x, scale];
    args.extend(zp);
    let y = c.add(None, Op::Quantize { axis, block, to }, &args)?;
    c.set_output(0, y);
    Ok(())
}

fn dequantize_linear(c: &mut Ctx<'_, '_>) -> Res<()> {
    let x = c.input(0)?;
    let scale = c.input(1)?;
    let zp = c.opt_input(2)?;
    let (axis, block) = axis_block(c, x, scale)?;
    let mut args = vec![x, scale];
    args.extend(zp);
    let y = c.add(None, Op::Dequantize { axis, block }, &args)?;
    c.set_output(0, y);
    Ok(())
}

/// u8 quantisation with a scale and zero point from the input's range
/// (always including 0), as onnxruntime computes it.
fn dynamic_quantize_linear(c: &mut Ctx<'_, '_>) -> Res<()> {
    let x = c.input(0)?;
    let rank = c.ty(x).shape.rank();
    let all = |keep_dims| Op::Reduce { kind: ReduceKind::Max, axes: (0..rank).collect(), keep_dims };
    let zero = c.scalar("zero", DType::F32, 0.0)?;
    let mx = c.add(Some("max"), all(false), &[x])?;
    let mx = c.add(Some("max0"), Op::Binary(BinaryOp::Max), &[mx, zero])?;
    let nx = c.add(Some("neg"), Op::Unary(UnaryOp::Neg), &[x])?;
    let nmn = c.add(Some("neg_min"), all(false), &[nx])?;
    let mn = c.add(Some("min"), Op::Unary(UnaryOp::Neg), &[nmn])?;
    let mn = c.add(Some("min0"), Op::Binary(BinaryOp::Min), &[mn, zero])?;
    let range = c.add(Some("range"), Op::Binary(BinaryOp::Sub), &[mx, mn])?;
    let qrange = c.scalar("qrange", DType::F32, 255.0)?;
    let scale = c.add(Some("scale"), Op::Binary(BinaryOp::Div), &[range, qrange])?;
    let ratio = c.add(Some("min_over_scale"), Op::Binary(BinaryOp::Div), &[mn, scale])?;
    let izp = c.add(Some("initial_zero_point"), Op::Unary(UnaryOp::Neg), &[ratio])?;
    let rzp = c.add(Some("rounded_zero_point"), Op::Unary(UnaryOp::Round), &[izp])?;
    let czp = c.add(Some("clipped_zero_point"), Op::Clip { min: 0.0, max: 255.0 }, &[rzp])?;
    let zp = c.add(Some("zero_point"), Op::Cast { to: DType::U8 }, &[czp])?;
    let y = quant(c, x, scale, Some(zp), 0, DType::U8)?;
    c.set_output(0, y);
    c.set_output(1, scale);
    c.set_output(2, zp);
    Ok(())
}

/// `cast(q, i32) - cast(zp, i32)`, with a per-row (or per-channel) zero
/// point reshaped so it broadcasts along `axis`.
fn widen(c: &mut Ctx<'_, '_>, what: &str, q: NodeId, zp: Option<NodeId>, axis: usize) -> Res<NodeId> {
    let qi = c.add(Some(&format!("{what}_i32")), Op::Cast { to: DType::I32 }, &[q])?;
    let Some(z) = zp else { return Ok(qi) };
    let (tq, tz) = (c.ty(q), c.ty(z));
    let zi = c.add(Some(&format!("{what}_zero_point_i32")), Op::Cast { to: DType::I32 }, &[z])?;
    let zi = if tz.shape.numel() > 1 {
        let mut shape = vec![1; tq.shape.rank()];
        if let Some(s) = shape.get_mut(axis) {
            *s = tz.shape.numel();
        }
        c.add_typed(Some(&format!("{what}_zero_point_column")), Op::Reshape, &[zi], TensorType::new(DType::I32, shape))?
    } else {
        zi
    };
    c.add(Some(&format!("{what}_centered")), Op::Binary(BinaryOp::Sub), &[qi, zi])
}

/// `(A - a_zp) @ (B - b_zp)` in i32 (a_zp per tensor or per row, b_zp per
/// tensor or per column).
fn matmul_integer(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (a, b) = (c.input(0)?, c.input(1)?);
    let (za, zb) = (c.opt_input(2)?, c.opt_input(3)?);
    let (ra, rb) = (c.ty(a).shape.rank(), c.ty(b).shape.rank());
    let ai = widen(c, "a", a, za, ra.saturating_sub(2))?;
    let bi = widen(c, "b", b, zb, rb.saturating_sub(1))?;
    let y = c.add(None, Op::MatMul, &[ai, bi])?;
    c.set_output(0, y);
    Ok(())
}

/// ConvInteger: centred operands converted to f32, a float convolution, and
/// the (integral) result cast to i32. Exact while every partial sum stays
/// below 2^24 in magnitude (u8 x i8 products: up to 512 taps per output).
fn conv_integer(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, w) = (c.input(0)?, c.input(1)?);
    let (zx, zw) = (c.opt_input(2)?, c.opt_input(3)?);
    let xi = widen(c, "x", x, zx, 1)?;
    let wi = widen(c, "w", w, zw, 0)?;
    let xf = c.add(Some("x_f32"), Op::Cast { to: DType::F32 }, &[xi])?;
    let wf = c.add(Some("w_f32"), Op::Cast { to: DType::F32 }, &[wi])?;
    let yf = super::nn::conv_node(c, xf, wf, None, Some("conv"))?;
    let y = c.add(None, Op::Cast { to: DType::I32 }, &[yf])?;
    c.set_output(0, y);
    Ok(())
}

/// QLinearMatMul: dequantize both operands (a per tensor or per row, b per
/// tensor or per column), float matmul, quantize.
fn qlinear_matmul(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (a, sa, za) = (c.input(0)?, c.input(1)?, c.input(2)?);
    let (b, sb, zb) = (c.input(3)?, c.input(4)?, c.input(5)?);
    let (sy, zy) = (c.input(6)?, c.input(7)?);
    let (ra, rb) = (c.ty(a).shape.rank(), c.ty(b).shape.rank());
    let af = dequant(c, "a_f32", a, sa, Some(za), ra.saturating_sub(2))?;
    let bf = dequant(c, "b_f32", b, sb, Some(zb), rb.saturating_sub(1))?;
    let yf = c.add(Some("matmul"), Op::MatMul, &[af, bf])?;
    let to = c.ty(zy).dtype;
    let y = quant(c, yf, sy, Some(zy), 0, to)?;
    c.set_output(0, y);
    Ok(())
}

/// QLinearConv: dequantize x (per tensor) and w (per tensor or per output
/// channel), the i32 bias with scale `x_scale * w_scale`, float conv, quantize.
fn qlinear_conv(c: &mut Ctx<'_, '_>) -> Res<()> {
    let (x, sx, zx) = (c.input(0)?, c.input(1)?, c.input(2)?);
    let (w, sw, zw) = (c.input(3)?, c.input(4)?, c.input(5)?);
    let (sy, zy) = (c.input(6)?, c.input(7)?);
    let bias = c.opt_input(8)?;
    let xf = dequant(c, "x_f32", x, sx, Some(zx), 1)?;
    let wf = dequant(c, "w_f32", w, sw, Some(zw), 0)?;
    let bf = match bias {
        Some(b) => {
            let bs = c.add(Some("bias_scale"), Op::Binary(BinaryOp::Mul), &[sx, sw])?;
            Some(dequant(c, "bias_f32", b, bs, None, 0)?)
        }
        None => None,
    };
    let yf = super::nn::conv_node(c, xf, wf, bf, Some("conv"))?;
    let to = c.ty(zy).dtype;
    let y = quant(c, yf, sy, Some(zy), 1, to)?;
    c.set_output(0, y);
    Ok(())
}
