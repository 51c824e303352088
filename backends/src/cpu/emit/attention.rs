//! Fused scaled dot-product attention: one pass over the keys per query row
//! with an online softmax (running maximum `m`, running sum `l`, the output
//! row as the accumulator, rescaled by `exp(m_old - m_new)` when the maximum
//! grows), so no `[Sq, Sk]` score matrix and no scratch memory. Masked keys
//! (causal `j > i`, or a score of `-inf`) are skipped; a row with no key
//! left is written as zeros.

use super::require_f32;
use crate::cpu::kernel::Kb;
use crate::cpu::math;
use cranelift_codegen::ir::InstBuilder;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::F32;
use nanoc_ir::{DType, Node, Shape, TensorType};

/// Attention over q `[B, H, Sq, D]`, k `[B, Hkv, Sk, D]`, v
/// `[B, Hkv, Sk, Dv]` and an optional mask broadcast to `[B, H, Sq, Sk]`.
pub(super) fn attention(
    kb: &mut Kb,
    node: &Node,
    args: &[&TensorType],
    scale: f32,
    causal: bool,
) -> Result<(), String> {
    require_f32("attention", args)?;
    require_f32("attention", &[&node.ty])?;
    let dims = |t: &TensorType| -> Result<[usize; 4], String> {
        <[usize; 4]>::try_from(t.shape.dims()).map_err(|_| format!("attention operand {t} is not rank 4"))
    };
    let [b, h, sq, d] = dims(args[0])?;
    let [_, hkv, sk, _] = dims(args[1])?;
    let [_, _, _, dv] = dims(args[2])?;
    if hkv == 0 || h % hkv != 0 {
        return Err(format!("attention kv heads {hkv} do not divide query heads {h}"));
    }
    let group = h / hkv;
    let scores = Shape(vec![b, h, sq, sk]);
    let mask_strides: Option<Vec<i64>> =
        args.get(3).map(|m| m.shape.broadcast_strides(&scores).iter().map(|&s| s as i64).collect());
    let (hi, hkvi, sqi, ski, di, dvi, gi) =
        (h as i64, hkv as i64, sq as i64, sk as i64, d as i64, dv as i64, group as i64);
    // Query heads are visited as (kv head, head within its group).
    kb.nest(&[b, hkv, group, sq], &mut |kb, ivs| {
        let (bi, kvh, g, i) = (ivs[0], ivs[1], ivs[2], ivs[3]);
        let t = kb.b.ins().imul_imm_s(kvh, gi);
        let head = kb.b.ins().iadd(t, g);
        // Row index (b, head, i) of q and the output; (b, kv head) of k and v.
        let t = kb.b.ins().imul_imm_s(bi, hi);
        let t = kb.b.ins().iadd(t, head);
        let t = kb.b.ins().imul_imm_s(t, sqi);
        let row = kb.b.ins().iadd(t, i);
        let q_base = kb.b.ins().imul_imm_s(row, di);
        let o_base = kb.b.ins().imul_imm_s(row, dvi);
        let t = kb.b.ins().imul_imm_s(bi, hkvi);
        let kv = kb.b.ins().iadd(t, kvh);
        let kv_row0 = kb.b.ins().imul_imm_s(kv, ski);
        let out = kb.arg(0);
        let zero = kb.f32c(0.0);
        kb.for_n(dv, &mut |kb, e| {
            let oi = kb.b.ins().iadd(o_base, e);
            kb.store(DType::F32, out, oi, zero);
        });
        let ninf = kb.f32c(f32::NEG_INFINITY);
        let run_max = kb.var(F32, ninf);
        let run_sum = kb.var(F32, zero);
        kb.for_n(sk, &mut |kb, j| {
            let mut key = |kb: &mut Kb| {
                let (pq, pk, pv) = (kb.arg(1), kb.arg(2), kb.arg(3));
                let key_row = kb.b.ins().iadd(kv_row0, j);
                let k_base = kb.b.ins().imul_imm_s(key_row, di);
                let v_base = kb.b.ins().imul_imm_s(key_row, dvi);
                let zero = kb.f32c(0.0);
                let dot = kb.var(F32, zero);
                kb.for_n(d, &mut |kb, e| {
                    let qi = kb.b.ins().iadd(q_base, e);
                    let x = kb.load(DType::F32, pq, qi);
                    let ki = kb.b.ins().iadd(k_base, e);
                    let y = kb.load(DType::F32, pk, ki);
                    let p = kb.b.ins().fmul(x, y);
                    let cur = kb.b.use_var(dot);
                    let s = kb.b.ins().fadd(cur, p);
                    kb.b.def_var(dot, s);
                });
                let dot = kb.b.use_var(dot);
                let sc = kb.f32c(scale);
                let mut s = kb.b.ins().fmul(dot, sc);
                if let Some(ms) = &mask_strides {
                    let mi = kb.index(0, &[bi, head, i, j], ms);
                    let pm = kb.arg(4);
                    let m = kb.load(DType::F32, pm, mi);
                    s = kb.b.ins().fadd(s, m);
                }
                let ninf = kb.f32c(f32::NEG_INFINITY);
                let live = kb.b.ins().fcmp(FloatCC::GreaterThan, s, ninf);
                kb.if_then(live, &mut |kb| {
                    let old = kb.b.use_var(run_max);
                    let new = kb.b.ins().fmax(old, s);
                    let t = kb.b.ins().fsub(old, new);
                    let rescale = math::exp(&mut kb.b, t);
                    let t = kb.b.ins().fsub(s, new);
                    let p = math::exp(&mut kb.b, t);
                    let l = kb.b.use_var(run_sum);
                    let l = kb.b.ins().fmul(l, rescale);
                    let l = kb.b.ins().fadd(l, p);
                    kb.b.def_var(run_sum, l);
                    kb.b.def_var(run_max, new);
                    let (out, pv) = (kb.arg(0), pv);
                    kb.for_n(dv, &mut |kb, e| {
                        let oi = kb.b.ins().iadd(o_base, e);
                        let o = kb.load(DType::F32, out, oi);
                        let vi = kb.b.ins().iadd(v_base, e);
                        let x = kb.load(DType::F32, pv, vi);
                        let o = kb.b.ins().fmul(o, rescale);
                        let px = kb.b.ins().fmul(p, x);
                        let o = kb.b.ins().fadd(o, px);
                        kb.store(DType::F32, out, oi, o);
                    });
                });
            };
            if causal {
                let before = kb.b.ins().icmp(IntCC::SignedLessThanOrEqual, j, i);
                kb.if_then(before, &mut key);
            } else {
                key(kb);
            }
        });
        // out /= l, or zeros when every key was masked.
        let m = kb.b.use_var(run_max);
        let ninf = kb.f32c(f32::NEG_INFINITY);
        let any = kb.b.ins().fcmp(FloatCC::GreaterThan, m, ninf);
        let l = kb.b.use_var(run_sum);
        let one = kb.f32c(1.0);
        let inv = kb.b.ins().fdiv(one, l);
        let zero = kb.f32c(0.0);
        let inv = kb.b.ins().select(any, inv, zero);
        kb.for_n(dv, &mut |kb, e| {
            let oi = kb.b.ins().iadd(o_base, e);
            let o = kb.load(DType::F32, out, oi);
            let o = kb.b.ins().fmul(o, inv);
            kb.store(DType::F32, out, oi, o);
        });
    });
    Ok(())
}
