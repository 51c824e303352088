//! Quantisation kernels: dequantize and quantize, with the parameter index
//! of each element computed from `quant_param_map` (per tensor, per axis,
//! or blocked).

use super::strides;
use crate::cpu::kernel::Kb;
use crate::cpu::math;
use cranelift_codegen::ir::types::{F32, I32};
use cranelift_codegen::ir::{InstBuilder, Value};
use nanoc_ir::{DType, Node, TensorType, quant_param_map};

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
    let (lo, hi) = if to == DType::U8 { (0.0, 255.0) } else { (-128.0, 127.0) };
    kb.nest(&x.shape.0, &mut |kb, ivs| {
        let i = kb.index(0, ivs, &xs);
        let pi = param_index(kb, ivs, &map);
        let (px, ps) = (kb.arg(1), kb.arg(2));
        let v = kb.load(DType::F32, px, i);
        let s = kb.load(DType::F32, ps, pi);
        let d = kb.b.ins().fdiv(v, s);
        let mut r = math::round_half_even(&mut kb.b, d);
        if has_zp {
            let pz = kb.arg(3);
            let z = load_i32(kb, to, pz, pi);
            let zf = kb.b.ins().fcvt_from_sint(F32, z);
            r = kb.b.ins().fadd(r, zf);
        }
        let (l, h) = (kb.f32c(lo), kb.f32c(hi));
        let r = kb.b.ins().fmax(r, l);
        let r = kb.b.ins().fmin(r, h);
        let qi = kb.b.ins().fcvt_to_sint_sat(I32, r);
        let q = kb.b.ins().ireduce(cranelift_codegen::ir::types::I8, qi);
        let po = kb.arg(0);
        kb.store(to, po, i, q);
    });
    Ok(())
}
