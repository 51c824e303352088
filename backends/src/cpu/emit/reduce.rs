//! Reductions and pooling.

use super::linalg::window_tap;
use super::require_f32;
use crate::cpu::kernel::{Kb, reg_type};
use cranelift_codegen::ir::InstBuilder;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::F32;
use nanoc_ir::{DType, Node, ReduceKind, TensorType, Window};

/// Sum/mean/max over `axes`: a loop nest over the kept dims, an inner nest
/// over the reduced dims.
pub(super) fn reduce(
    kb: &mut Kb,
    node: &Node,
    args: &[&TensorType],
    kind: ReduceKind,
    axes: &[usize],
) -> Result<(), String> {
    let x = args[0];
    let dt = x.dtype;
    let ok = dt == DType::F32 || (kind != ReduceKind::Mean && matches!(dt, DType::I32 | DType::I64));
    if !ok {
        return Err(format!("{} on {x} is not supported", node.op.name()));
    }
    let ty = reg_type(dt).ok_or("unsupported dtype")?;
    let xs: Vec<i64> = x.shape.strides().iter().map(|&s| s as i64).collect();
    let (mut kept, mut kept_s, mut red, mut red_s) = (vec![], vec![], vec![], vec![]);
    for (d, &n) in x.shape.0.iter().enumerate() {
        if axes.contains(&d) {
            red.push(n);
            red_s.push(xs[d]);
        } else {
            kept.push(n);
            kept_s.push(xs[d]);
        }
    }
    let count: usize = red.iter().product();
    let out_s: Vec<i64> = TensorType::new(dt, kept.clone()).shape.strides().iter().map(|&s| s as i64).collect();
    kb.nest(&kept, &mut |kb, kivs| {
        let base = kb.index(0, kivs, &kept_s);
        let init = match (kind, dt) {
            (ReduceKind::Max, DType::F32) => kb.f32c(f32::NEG_INFINITY),
            (_, DType::F32) => kb.f32c(0.0),
            (ReduceKind::Max, DType::I32) => kb.b.ins().iconst(ty, i32::MIN as i64),
            (ReduceKind::Max, _) => kb.b.ins().iconst(ty, i64::MIN),
            _ => kb.b.ins().iconst(ty, 0),
        };
        let acc = kb.var(ty, init);
        let px = kb.arg(1);
        kb.nest(&red, &mut |kb, rivs| {
            let off = kb.index(0, rivs, &red_s);
            let i = kb.b.ins().iadd(base, off);
            let v = kb.load(dt, px, i);
            let cur = kb.b.use_var(acc);
            let r = match (kind, dt) {
                (ReduceKind::Max, DType::F32) => kb.b.ins().fmax(cur, v),
                (_, DType::F32) => kb.b.ins().fadd(cur, v),
                (ReduceKind::Max, _) => kb.b.ins().smax(cur, v),
                _ => kb.b.ins().iadd(cur, v),
            };
            kb.b.def_var(acc, r);
        });
        let mut v = kb.b.use_var(acc);
        if kind == ReduceKind::Mean {
            let c = kb.f32c(count as f32);
            v = kb.b.ins().fdiv(v, c);
        }
        let oi = kb.index(0, kivs, &out_s);
        let po = kb.arg(0);
        kb.store(dt, po, oi, v);
    });
    Ok(())
}

/// Max pooling (`avg = None`) or average pooling (`avg = Some(count_include_pad)`).
pub(super) fn pool(
    kb: &mut Kb,
    node: &Node,
    args: &[&TensorType],
    window: &Window,
    avg: Option<bool>,
) -> Result<(), String> {
    require_f32(node.op.name(), args)?;
    let x = &args[0].shape;
    let in_sp = x.0[2..].to_vec();
    let out_sp = node.ty.shape.0[2..].to_vec();
    let xs: Vec<i64> = x.strides().iter().map(|&s| s as i64).collect();
    let os: Vec<i64> = node.ty.shape.strides().iter().map(|&s| s as i64).collect();
    let mut dims = vec![x.0[0], x.0[1]];
    dims.extend(&out_sp);
    let padded: Vec<i64> =
        (0..in_sp.len()).map(|d| (in_sp[d] + window.pads_begin[d] + window.pads_end[d]) as i64).collect();
    kb.nest(&dims, &mut |kb, ivs| {
        let o = &ivs[2..];
        let init = if avg.is_some() { kb.f32c(0.0) } else { kb.f32c(f32::NEG_INFINITY) };
        let acc = kb.var(F32, init);
        let zero = kb.f32c(0.0);
        let cnt = kb.var(F32, zero);
        kb.nest(&window.kernel, &mut |kb, kivs| {
            let (pos, valid) = window_tap(kb, window, &in_sp, o, kivs);
            if avg == Some(true) {
                // Count taps inside the padded extent.
                let mut inside = kb.b.ins().iconst(cranelift_codegen::ir::types::I8, 1);
                for d in 0..pos.len() {
                    let q = kb.b.ins().iadd_imm_s(pos[d], window.pads_begin[d] as i64);
                    let ok = kb.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, q, padded[d]);
                    inside = kb.b.ins().band(inside, ok);
                }
                let one = kb.f32c(1.0);
                let c = kb.b.use_var(cnt);
                let c1 = kb.b.ins().fadd(c, one);
                let c = kb.b.ins().select(inside, c1, c);
                kb.b.def_var(cnt, c);
            }
            kb.if_then(valid, &mut |kb| {
                let mut xi_ivs = vec![ivs[0], ivs[1]];
                xi_ivs.extend(&pos);
                let xi = kb.index(0, &xi_ivs, &xs);
                let px = kb.arg(1);
                let v = kb.load(DType::F32, px, xi);
                let cur = kb.b.use_var(acc);
                let r = if avg.is_some() { kb.b.ins().fadd(cur, v) } else { kb.b.ins().fmax(cur, v) };
                kb.b.def_var(acc, r);
                if avg == Some(false) {
                    let one = kb.f32c(1.0);
                    let c = kb.b.use_var(cnt);
                    let c = kb.b.ins().fadd(c, one);
                    kb.b.def_var(cnt, c);
                }
            });
        });
        let mut v = kb.b.use_var(acc);
        if avg.is_some() {
            // A window that holds no counted cell averages to 0 (as in the
            // interpreter), not 0/0.
            let c = kb.b.use_var(cnt);
            let one = kb.f32c(1.0);
            let c = kb.b.ins().fmax(c, one);
            v = kb.b.ins().fdiv(v, c);
        }
        let oi = kb.index(0, ivs, &os);
        let po = kb.arg(0);
        kb.store(DType::F32, po, oi, v);
    });
    Ok(())
}
