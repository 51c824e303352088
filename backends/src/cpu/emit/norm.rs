//! Softmax, layer and RMS normalisation: per-row passes over a contiguous
//! axis range (max/sum, mean/variance, mean square), then a write pass.

use super::require_f32;
use crate::cpu::kernel::Kb;
use crate::cpu::math;
use cranelift_codegen::ir::InstBuilder;
use cranelift_codegen::ir::types::F32;
use nanoc_ir::{DType, Node, Shape, TensorType};

/// Softmax along `axis`: rows are `(outer, inner)` pairs, the axis has
/// stride `inner`.
pub(super) fn softmax(kb: &mut Kb, node: &Node, axis: usize) -> Result<(), String> {
    require_f32("softmax", &[&node.ty])?;
    let d = &node.ty.shape.0;
    let outer: usize = d[..axis].iter().product();
    let n = d[axis];
    let inner: usize = d[axis + 1..].iter().product();
    let (ni, ii) = (n as i64, inner as i64);
    kb.nest(&[outer, inner], &mut |kb, ivs| {
        let t = kb.b.ins().imul_imm_s(ivs[0], ni * ii);
        let base = kb.b.ins().iadd(t, ivs[1]);
        let (px, po) = (kb.arg(1), kb.arg(0));
        let elem = |kb: &mut Kb, j| {
            let t = kb.b.ins().imul_imm_s(j, ii);
            kb.b.ins().iadd(base, t)
        };
        let ninf = kb.f32c(f32::NEG_INFINITY);
        let mx = kb.var(F32, ninf);
        kb.for_n(n, &mut |kb, j| {
            let i = elem(kb, j);
            let v = kb.load(DType::F32, px, i);
            let cur = kb.b.use_var(mx);
            let m = kb.b.ins().fmax(cur, v);
            kb.b.def_var(mx, m);
        });
        let zero = kb.f32c(0.0);
        let sum = kb.var(F32, zero);
        kb.for_n(n, &mut |kb, j| {
            let i = elem(kb, j);
            let v = kb.load(DType::F32, px, i);
            let m = kb.b.use_var(mx);
            let t = kb.b.ins().fsub(v, m);
            let e = math::exp(&mut kb.b, t);
            kb.store(DType::F32, po, i, e);
            let cur = kb.b.use_var(sum);
            let s = kb.b.ins().fadd(cur, e);
            kb.b.def_var(sum, s);
        });
        let one = kb.f32c(1.0);
        let s = kb.b.use_var(sum);
        let inv = kb.b.ins().fdiv(one, s);
        kb.for_n(n, &mut |kb, j| {
            let i = elem(kb, j);
            let v = kb.load(DType::F32, po, i);
            let r = kb.b.ins().fmul(v, inv);
            kb.store(DType::F32, po, i, r);
        });
    });
    Ok(())
}

/// Layer normalisation over dims `axis..` with scale and optional bias
/// broadcast to the normalised dims.
pub(super) fn layer_norm(kb: &mut Kb, node: &Node, args: &[&TensorType], axis: usize, eps: f32) -> Result<(), String> {
    require_f32("layer_norm", args)?;
    let d = &node.ty.shape.0;
    let outer: usize = d[..axis].iter().product();
    let norm = Shape(d[axis..].to_vec());
    let n = norm.numel();
    let nf = n as f32;
    // Parameter strides over the flattened normalised index: parameters
    // that broadcast are read with a loop nest over the normalised dims.
    let pstrides: Vec<Vec<i64>> =
        args[1..].iter().map(|p| p.shape.broadcast_strides(&norm).iter().map(|&s| s as i64).collect()).collect();
    let nstrides: Vec<i64> = norm.strides().iter().map(|&s| s as i64).collect();
    let has_bias = args.len() == 3;
    let ni = n as i64;
    kb.for_n(outer, &mut |kb, r| {
        let base = kb.b.ins().imul_imm_s(r, ni);
        let (px, po) = (kb.arg(1), kb.arg(0));
        // Statistics of x - x[0] (shifted data): exact for constant rows and
        // less cancellation in general.
        let shift = kb.load(DType::F32, px, base);
        let zero = kb.f32c(0.0);
        let sum = kb.var(F32, zero);
        kb.for_n(n, &mut |kb, j| {
            let i = kb.b.ins().iadd(base, j);
            let v = kb.load(DType::F32, px, i);
            let d = kb.b.ins().fsub(v, shift);
            let cur = kb.b.use_var(sum);
            let s = kb.b.ins().fadd(cur, d);
            kb.b.def_var(sum, s);
        });
        let s = kb.b.use_var(sum);
        let nc = kb.f32c(nf);
        let mean_d = kb.b.ins().fdiv(s, nc);
        let var = kb.var(F32, zero);
        kb.for_n(n, &mut |kb, j| {
            let i = kb.b.ins().iadd(base, j);
            let v = kb.load(DType::F32, px, i);
            let d = kb.b.ins().fsub(v, shift);
            let dlt = kb.b.ins().fsub(d, mean_d);
            let sq = kb.b.ins().fmul(dlt, dlt);
            let cur = kb.b.use_var(var);
            let s = kb.b.ins().fadd(cur, sq);
            kb.b.def_var(var, s);
        });
        let v = kb.b.use_var(var);
        let v = kb.b.ins().fdiv(v, nc);
        let e = kb.f32c(eps);
        let v = kb.b.ins().fadd(v, e);
        let sd = kb.b.ins().sqrt(v);
        let one = kb.f32c(1.0);
        let rstd = kb.b.ins().fdiv(one, sd);
        kb.nest(&norm.0, &mut |kb, nivs| {
            let j = kb.index(0, nivs, &nstrides);
            let i = kb.b.ins().iadd(base, j);
            let x = kb.load(DType::F32, px, i);
            let d = kb.b.ins().fsub(x, shift);
            let c = kb.b.ins().fsub(d, mean_d);
            let c = kb.b.ins().fmul(c, rstd);
            let si = kb.index(0, nivs, &pstrides[0]);
            let ps = kb.arg(2);
            let sc = kb.load(DType::F32, ps, si);
            let mut y = kb.b.ins().fmul(c, sc);
            if has_bias {
                let bi = kb.index(0, nivs, &pstrides[1]);
                let pb = kb.arg(3);
                let bv = kb.load(DType::F32, pb, bi);
                y = kb.b.ins().fadd(y, bv);
            }
            kb.store(DType::F32, po, i, y);
        });
    });
    let _: &TensorType = &node.ty;
    Ok(())
}

/// RMS normalisation over dims `axis..`: `x / sqrt(mean(x²) + eps)`, times
/// the scale (broadcast to the normalised dims) when there is one.
pub(super) fn rms_norm(kb: &mut Kb, node: &Node, args: &[&TensorType], axis: usize, eps: f32) -> Result<(), String> {
    require_f32("rms_norm", args)?;
    let d = &node.ty.shape.0;
    let outer: usize = d[..axis].iter().product();
    let norm = Shape(d[axis..].to_vec());
    let n = norm.numel();
    let scale_strides: Option<Vec<i64>> =
        args.get(1).map(|p| p.shape.broadcast_strides(&norm).iter().map(|&s| s as i64).collect());
    let nstrides: Vec<i64> = norm.strides().iter().map(|&s| s as i64).collect();
    let ni = n as i64;
    kb.for_n(outer, &mut |kb, r| {
        let base = kb.b.ins().imul_imm_s(r, ni);
        let (px, po) = (kb.arg(1), kb.arg(0));
        let zero = kb.f32c(0.0);
        let sum = kb.var(F32, zero);
        kb.for_n(n, &mut |kb, j| {
            let i = kb.b.ins().iadd(base, j);
            let v = kb.load(DType::F32, px, i);
            let sq = kb.b.ins().fmul(v, v);
            let cur = kb.b.use_var(sum);
            let s = kb.b.ins().fadd(cur, sq);
            kb.b.def_var(sum, s);
        });
        let s = kb.b.use_var(sum);
        let nc = kb.f32c(n as f32);
        let ms = kb.b.ins().fdiv(s, nc);
        let e = kb.f32c(eps);
        let ms = kb.b.ins().fadd(ms, e);
        let rms = kb.b.ins().sqrt(ms);
        let one = kb.f32c(1.0);
        let inv = kb.b.ins().fdiv(one, rms);
        kb.nest(&norm.0, &mut |kb, nivs| {
            let j = kb.index(0, nivs, &nstrides);
            let i = kb.b.ins().iadd(base, j);
            let x = kb.load(DType::F32, px, i);
            let mut y = kb.b.ins().fmul(x, inv);
            if let Some(ss) = &scale_strides {
                let si = kb.index(0, nivs, ss);
                let ps = kb.arg(2);
                let sc = kb.load(DType::F32, ps, si);
                y = kb.b.ins().fmul(y, sc);
            }
            kb.store(DType::F32, po, i, y);
        });
    });
    Ok(())
}
