//! Quantisation kernels: dequantize and quantize, with the parameter index
//! of each element computed from `quant_param_map` (per tensor, per axis,
//! or blocked), and the quantised matmul.

use super::strides;
use crate::cpu::kernel::Kb;
use crate::cpu::math;
use cranelift_codegen::ir::types::{F32, I8, I32};
use cranelift_codegen::ir::{InstBuilder, Value};
use nanoc_ir::{DType, Node, QMatMulForm, TensorType, quant_param_map};

/// Parameter index for the element at `ivs`: `sum((iv / div) * stride)`.
fn param_index(kb: &mut Kb, ivs: &[Value], map: &[(usize, usize)]) -> Value {
    let mut acc = kb.i64c(0);
    for (&iv, &(div, stride)) in ivs.iter().zip(map) {
        if stride == 0 {
            continue;
        }
        let q = if div > 1 { kb.b.ins().udiv_imm_u(iv, div as i64) } else { iv };
        let t = if stride == 1 { q } else { kb.b.ins().imul_imm_s(q, stride as i64) };
        acc = kb.b.ins().iadd(acc, t);
    }
    acc
}

/// Loads an integer element of `dt` widened to i32.
fn load_i32(kb: &mut Kb, dt: DType, ptr: Value, idx: Value) -> Value {
    let v = kb.load(dt, ptr, idx);
    match dt {
        DType::I32 => v,
        DType::U8 => kb.b.ins().uextend(I32, v),
        _ => kb.b.ins().sextend(I32, v),
    }
}

pub(super) fn dequantize(
    kb: &mut Kb,
    _node: &Node,
    args: &[&TensorType],
    axis: usize,
    block: usize,
) -> Result<(), String> {
    let x = args[0];
    let map = quant_param_map(&x.shape, &args[1].shape, axis, block).ok_or("parameters do not fit")?;
    let xs = strides(x);
    let has_zp = args.len() == 3;
    kb.nest(&x.shape.0, &mut |kb, ivs| {
        let i = kb.index(0, ivs, &xs);
        let pi = param_index(kb, ivs, &map);
        let px = kb.arg(1);
        let mut q = load_i32(kb, x.dtype, px, i);
        if has_zp {
            let pz = kb.arg(3);
            let z = load_i32(kb, x.dtype, pz, pi);
            q = kb.b.ins().isub(q, z);
        }
        let qf = kb.b.ins().fcvt_from_sint(F32, q);
        let ps = kb.arg(2);
        let s = kb.load(DType::F32, ps, pi);
        let y = kb.b.ins().fmul(qf, s);
        let po = kb.arg(0);
        kb.store(DType::F32, po, i, y);
    });
    Ok(())
}

pub(super) fn quantize(
    kb: &mut Kb,
    node: &Node,
    args: &[&TensorType],
    axis: usize,
    block: usize,
) -> Result<(), String> {
    let x = args[0];
    let to = node.ty.dtype;
    let map = quant_param_map(&x.shape, &args[1].shape, axis, block).ok_or("parameters do not fit")?;
    let xs = strides(x);
    let has_zp = args.len() == 3;
    kb.nest(&x.shape.0, &mut |kb, ivs| {
        let i = kb.index(0, ivs, &xs);
        let pi = param_index(kb, ivs, &map);
        let (px, ps) = (kb.arg(1), kb.arg(2));
        let v = kb.load(DType::F32, px, i);
        let s = kb.load(DType::F32, ps, pi);
        let z = if has_zp {
            let pz = kb.arg(3);
            Some(load_i32(kb, to, pz, pi))
        } else {
            None
        };
        let q = requantize(kb, v, s, z, to);
        let po = kb.arg(0);
        kb.store(to, po, i, q);
    });
    Ok(())
}

/// `saturate(round_half_even(v / scale) + zero_point)` to `to` (i8 or u8)
/// as an i8 register value; `zero_point` is an i32 value (absent = 0).
fn requantize(kb: &mut Kb, v: Value, scale: Value, zero_point: Option<Value>, to: DType) -> Value {
    let (lo, hi) = if to == DType::U8 { (0.0, 255.0) } else { (-128.0, 127.0) };
    let d = kb.b.ins().fdiv(v, scale);
    let mut r = math::round_half_even(&mut kb.b, d);
    if let Some(z) = zero_point {
        let zf = kb.b.ins().fcvt_from_sint(F32, z);
        r = kb.b.ins().fadd(r, zf);
    }
    let (l, h) = (kb.f32c(lo), kb.f32c(hi));
    let r = kb.b.ins().fmax(r, l);
    let r = kb.b.ins().fmin(r, h);
    let qi = kb.b.ins().fcvt_to_sint_sat(I32, r);
    kb.b.ins().ireduce(I8, qi)
}

/// The quantised matmul (forms in `nanoc_ir::QMatMulForm`): one output
/// element per (row, column). Weight-only: `a · f32(b - b_zp)` summed in
/// f32 (the weights dequantised on the fly), times the column's scale.
/// Integer forms: `(a - a_zp) · (b - b_zp)` accumulated in i32, then
/// `f32(acc) · (a_scale · b_scale)`, requantised for the 8-operand form.
pub(super) fn qmatmul(kb: &mut Kb, node: &Node, args: &[&TensorType]) -> Result<(), String> {
    let form = QMatMulForm::of(args.len()).ok_or("qmatmul takes 4, 6 or 8 operands")?;
    let wi = form.weights();
    let (a, b) = (args[0], args[wi]);
    let [k, n] = *b.shape.dims() else { return Err(format!("qmatmul weights must be a matrix, got {b}")) };
    let rows = if n == 0 { 0 } else { node.ty.shape.numel() / n };
    let per_column = args[wi + 1].shape.numel() != 1;
    let to = node.ty.dtype;
    // Kernel argument of operand `i` (argument 0 is the output).
    let operand = |i: usize| i + 1;
    kb.nest(&[rows, n], &mut |kb, ivs| {
        let (r, j) = (ivs[0], ivs[1]);
        let pi = if per_column { j } else { kb.i64c(0) };
        let a_row = kb.b.ins().imul_imm_s(r, k as i64);
        let pz = kb.arg(operand(wi + 2));
        let zb = load_i32(kb, b.dtype, pz, pi);
        let zero = kb.i64c(0);
        // Loads `b[p, j] - b_zp` as i32 and `a[r, p]` (centred for integer forms).
        let (pa, pb) = (kb.arg(operand(0)), kb.arg(operand(wi)));
        let weight = |kb: &mut Kb, p: Value| {
            let t = kb.b.ins().imul_imm_s(p, n as i64);
            let bi = kb.b.ins().iadd(t, j);
            let q = load_i32(kb, b.dtype, pb, bi);
            kb.b.ins().isub(q, zb)
        };
        let sb = {
            let ps = kb.arg(operand(wi + 1));
            kb.load(DType::F32, ps, pi)
        };
        let oi = kb.b.ins().imul_imm_s(r, n as i64);
        let oi = kb.b.ins().iadd(oi, j);
        let po = kb.arg(0);
        if form == QMatMulForm::WeightOnly {
            let init = kb.f32c(0.0);
            let acc = kb.var(F32, init);
            kb.for_n(k, &mut |kb, p| {
                let ai = kb.b.ins().iadd(a_row, p);
                let x = kb.load(DType::F32, pa, ai);
                let w = weight(kb, p);
                let w = kb.b.ins().fcvt_from_sint(F32, w);
                let prod = kb.b.ins().fmul(x, w);
                let cur = kb.b.use_var(acc);
                let sum = kb.b.ins().fadd(cur, prod);
                kb.b.def_var(acc, sum);
            });
            let sum = kb.b.use_var(acc);
            let y = kb.b.ins().fmul(sum, sb);
            kb.store(DType::F32, po, oi, y);
            return;
        }
        let za = {
            let p = kb.arg(operand(2));
            load_i32(kb, a.dtype, p, zero)
        };
        let init = kb.b.ins().iconst(I32, 0);
        let acc = kb.var(I32, init);
        kb.for_n(k, &mut |kb, p| {
            let ai = kb.b.ins().iadd(a_row, p);
            let x = load_i32(kb, a.dtype, pa, ai);
            let x = kb.b.ins().isub(x, za);
            let w = weight(kb, p);
            let prod = kb.b.ins().imul(x, w);
            let cur = kb.b.use_var(acc);
            let sum = kb.b.ins().iadd(cur, prod);
            kb.b.def_var(acc, sum);
        });
        let sum = kb.b.use_var(acc);
        let sum = kb.b.ins().fcvt_from_sint(F32, sum);
        let sa = {
            let p = kb.arg(operand(1));
            kb.load(DType::F32, p, zero)
        };
        let scale = kb.b.ins().fmul(sa, sb);
        let y = kb.b.ins().fmul(sum, scale);
        if form == QMatMulForm::Integer {
            kb.store(DType::F32, po, oi, y);
            return;
        }
        let (ps, pz) = (kb.arg(operand(6)), kb.arg(operand(7)));
        let ys = kb.load(DType::F32, ps, zero);
        let yz = load_i32(kb, to, pz, zero);
        let q = requantize(kb, y, ys, Some(yz), to);
        kb.store(to, po, oi, q);
    });
    Ok(())
}

/// The block-quantised matmul (`qmatmul_block`, see `nanoc_ir`'s
/// `ops/quant.rs`): per output element and block, `a · f32(q - zp)` summed
/// in f32 with the `bits`-bit values unpacked on the fly, times the block's
/// scale, added to the total. Full blocks run in a loop, a partial last
/// block after it.
pub(super) fn qmatmul_block(
    kb: &mut Kb,
    node: &Node,
    args: &[&TensorType],
    bits: usize,
    block: usize,
) -> Result<(), String> {
    let (a, b) = (args[0], args[1]);
    let k = *a.shape.dims().last().ok_or("qmatmul_block activations have rank 0")?;
    let [n, row_bytes] = *b.shape.dims() else { return Err(format!("qmatmul_block weights {b} are not a matrix")) };
    if !matches!(bits, 2 | 4 | 8) || block == 0 {
        return Err(format!("qmatmul_block bits={bits} block={block} is not supported"));
    }
    let blocks = k.div_ceil(block);
    let (full, tail) = (k / block, k % block);
    let rows = if n == 0 { 0 } else { node.ty.shape.numel() / n };
    let has_zero_points = args.len() == 4;
    let per_byte = 8 / bits;
    let mask = (1i64 << bits) - 1;
    kb.nest(&[rows, n], &mut |kb, ivs| {
        let (r, j) = (ivs[0], ivs[1]);
        let a_row = kb.b.ins().imul_imm_s(r, k as i64);
        let b_row = kb.b.ins().imul_imm_s(j, row_bytes as i64);
        let p_row = kb.b.ins().imul_imm_s(j, blocks as i64);
        let init = kb.f32c(0.0);
        let total = kb.var(F32, init);
        // One block: `len` weights from element `start`, parameters at `pi`.
        let one_block = |kb: &mut Kb, start: Value, len: usize, pi: Value| {
            let z = if has_zero_points {
                let pz = kb.arg(4);
                load_i32(kb, DType::U8, pz, pi)
            } else {
                kb.b.ins().iconst(I32, 1i64 << (bits - 1))
            };
            let init = kb.f32c(0.0);
            let part = kb.var(F32, init);
            kb.for_n(len, &mut |kb, t| {
                let p = kb.b.ins().iadd(start, t);
                let ai = kb.b.ins().iadd(a_row, p);
                let pa = kb.arg(1);
                let x = kb.load(DType::F32, pa, ai);
                let byte_index =
                    if per_byte == 1 { p } else { kb.b.ins().ushr_imm_u(p, per_byte.trailing_zeros() as i64) };
                let bi = kb.b.ins().iadd(b_row, byte_index);
                let pb = kb.arg(2);
                let byte = load_i32(kb, DType::U8, pb, bi);
                let q = if per_byte == 1 {
                    byte
                } else {
                    let sub = kb.b.ins().band_imm_s(p, per_byte as i64 - 1);
                    let shift = kb.b.ins().imul_imm_s(sub, bits as i64);
                    let shift = kb.b.ins().ireduce(I32, shift);
                    let v = kb.b.ins().ushr(byte, shift);
                    kb.b.ins().band_imm_s(v, mask)
                };
                let c = kb.b.ins().isub(q, z);
                let w = kb.b.ins().fcvt_from_sint(F32, c);
                let prod = kb.b.ins().fmul(x, w);
                let cur = kb.b.use_var(part);
                let sum = kb.b.ins().fadd(cur, prod);
                kb.b.def_var(part, sum);
            });
            let ps = kb.arg(3);
            let s = kb.load(DType::F32, ps, pi);
            let sum = kb.b.use_var(part);
            let scaled = kb.b.ins().fmul(sum, s);
            let cur = kb.b.use_var(total);
            let t = kb.b.ins().fadd(cur, scaled);
            kb.b.def_var(total, t);
        };
        kb.for_n(full, &mut |kb, blk| {
            let start = kb.b.ins().imul_imm_s(blk, block as i64);
            let pi = kb.b.ins().iadd(p_row, blk);
            one_block(kb, start, block, pi);
        });
        if tail > 0 {
            let start = kb.i64c((full * block) as i64);
            let pi = kb.b.ins().iadd_imm_s(p_row, full as i64);
            one_block(kb, start, tail, pi);
        }
        let oi = kb.b.ins().imul_imm_s(r, n as i64);
        let oi = kb.b.ins().iadd(oi, j);
        let po = kb.arg(0);
        let y = kb.b.use_var(total);
        kb.store(DType::F32, po, oi, y);
    });
    Ok(())
}
