//! Contractions: matmul (batched, broadcast) and direct convolution.
//! Plain loop nests for now; the microkernel path replaces the inner
//! loops later without changing the callers.

use super::{elementwise, require_f32, strides};
use crate::cpu::kernel::Kb;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::{F32, I8};
use cranelift_codegen::ir::{InstBuilder, Value};
use nanoc_ir::{DType, Node, Program, Shape, TensorType, Window};

/// `out[b.., m, n] = sum_k a[b.., m, k] * b[b.., k, n]`; with an
/// epilogue (`matmul_epilogue`), each sum passes through it (operands 3..
/// read at the output element, broadcast) before the store.
pub(super) fn matmul(kb: &mut Kb, node: &Node, args: &[&TensorType], epilogue: Option<&Program>) -> Result<(), String> {
    let dt = args[0].dtype;
    if !matches!(dt, DType::F32 | DType::I32 | DType::I64) {
        return Err(format!("matmul on {} is not supported (f32, i32, i64)", args[0]));
    }
    // The epilogue's operands: the product (`x0`), then operands 3.. with
    // their strides over the output (the product's shape).
    let product = TensorType::new(dt, node.ty.shape.clone());
    let mut ep_operands: Vec<&TensorType> = vec![&product];
    ep_operands.extend_from_slice(&args[2..]);
    let extra_strides: Vec<Vec<i64>> = args[2..]
        .iter()
        .map(|t| t.shape.broadcast_strides(&node.ty.shape).into_iter().map(|s| s as i64).collect())
        .collect();
    let ep_types = match epilogue {
        Some(p) => {
            let types = p.step_types(&ep_operands)?;
            elementwise::check_program(p, &types, &ep_operands)?;
            types
        }
        None => Vec::new(),
    };
    let mut result = Ok(());
    let acc_ty = crate::cpu::kernel::reg_type(dt).ok_or("unsupported dtype")?;
    let float = dt == DType::F32;
    let (a, b) = (&args[0].shape, &args[1].shape);
    // Promote rank-1 operands; the output layout is unchanged by the
    // dropped unit dims.
    let a2 = if a.rank() == 1 { Shape(vec![1, a.0[0]]) } else { a.clone() };
    let b2 = if b.rank() == 1 { Shape(vec![b.0[0], 1]) } else { b.clone() };
    let (m, k) = (a2.0[a2.rank() - 2], a2.0[a2.rank() - 1]);
    let n = b2.0[b2.rank() - 1];
    let ab = Shape(a2.0[..a2.rank() - 2].to_vec());
    let bb = Shape(b2.0[..b2.rank() - 2].to_vec());
    let batch = Shape::broadcast(&ab, &bb).ok_or("matmul batch dims do not broadcast")?;
    let a_bs: Vec<i64> = ab.broadcast_strides(&batch).iter().map(|&s| (s * m * k) as i64).collect();
    let b_bs: Vec<i64> = bb.broadcast_strides(&batch).iter().map(|&s| (s * k * n) as i64).collect();
    let mut dims = batch.0.clone();
    dims.extend([m, n]);
    let out_strides = strides(&TensorType::new(DType::F32, dims.clone()));
    let nb = batch.rank();
    let (ki, ni) = (k as i64, n as i64);
    kb.nest(&dims, &mut |kb, ivs| {
        let (bivs, mn) = ivs.split_at(nb);
        let mut a_s = a_bs.clone();
        a_s.push(ki);
        let mut b_s = b_bs.clone();
        b_s.push(0);
        b_s.push(1);
        let mut a_ivs = bivs.to_vec();
        a_ivs.push(mn[0]);
        let abase = kb.index(0, &a_ivs, &a_s);
        let bbase = kb.index(0, ivs, &b_s);
        let zero = if float { kb.f32c(0.0) } else { kb.b.ins().iconst(acc_ty, 0) };
        let acc = kb.var(acc_ty, zero);
        let (pa, pb) = (kb.arg(1), kb.arg(2));
        kb.for_n(k, &mut |kb, kk| {
            let ai = kb.b.ins().iadd(abase, kk);
            let x = kb.load(dt, pa, ai);
            let t = kb.b.ins().imul_imm_s(kk, ni);
            let bi = kb.b.ins().iadd(bbase, t);
            let y = kb.load(dt, pb, bi);
            let cur = kb.b.use_var(acc);
            let s = if float {
                let p = kb.b.ins().fmul(x, y);
                kb.b.ins().fadd(cur, p)
            } else {
                let p = kb.b.ins().imul(x, y);
                kb.b.ins().iadd(cur, p)
            };
            kb.b.def_var(acc, s);
        });
        let mut v = kb.b.use_var(acc);
        if let Some(p) = epilogue {
            let mut vals = vec![v];
            for (i, t) in args[2..].iter().enumerate() {
                let idx = kb.index(0, ivs, &extra_strides[i]);
                let ptr = kb.arg(i + 3);
                vals.push(kb.load(t.dtype, ptr, idx));
            }
            match elementwise::program_value(kb, p, &ep_types, &ep_operands, &vals, ivs) {
                Ok(r) => v = r,
                Err(e) => result = Err(e),
            }
        }
        let oi = kb.index(0, ivs, &out_strides);
        let o = kb.arg(0);
        kb.store(node.ty.dtype, o, oi, v);
    });
    result
}

/// Spatial positions of one window tap: for each spatial dim `d`,
/// `pos = o*stride - pad_begin + k*dilation`, and whether all are inside
/// `[0, extent)`.
pub(super) fn window_tap(
    kb: &mut Kb,
    window: &Window,
    extents: &[usize],
    out_ivs: &[Value],
    k_ivs: &[Value],
) -> (Vec<Value>, Value) {
    let mut valid: Option<Value> = None;
    let mut pos = Vec::with_capacity(extents.len());
    for d in 0..extents.len() {
        let s = kb.b.ins().imul_imm_s(out_ivs[d], window.strides[d] as i64);
        let kd = kb.b.ins().imul_imm_s(k_ivs[d], window.dilations[d] as i64);
        let p = kb.b.ins().iadd(s, kd);
        let p = kb.b.ins().iadd_imm_s(p, -(window.pads_begin[d] as i64));
        // Unsigned compare also rejects negative positions.
        let ok = kb.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, p, extents[d] as i64);
        valid = Some(match valid {
            None => ok,
            Some(v) => kb.b.ins().band(v, ok),
        });
        pos.push(p);
    }
    let valid = valid.unwrap_or_else(|| kb.b.ins().iconst(I8, 1));
    (pos, valid)
}

/// Direct N-d convolution with groups, padding, strides and dilations.
pub(super) fn conv(
    kb: &mut Kb,
    node: &Node,
    args: &[&TensorType],
    window: &Window,
    group: usize,
) -> Result<(), String> {
    require_f32("conv", args)?;
    let (x, w) = (&args[0].shape, &args[1].shape);
    let has_bias = args.len() == 3;
    let (nb, c) = (x.0[0], x.0[1]);
    let m = w.0[0];
    let (cg, mg) = (c / group, m / group);
    let in_sp = x.0[2..].to_vec();
    let out_sp = node.ty.shape.0[2..].to_vec();
    let ksz = window.kernel.clone();
    let xs: Vec<i64> = x.strides().iter().map(|&s| s as i64).collect();
    let ws: Vec<i64> = w.strides().iter().map(|&s| s as i64).collect();
    let os = strides(&node.ty);
    let mut dims = vec![nb, group, mg];
    dims.extend(&out_sp);
    kb.nest(&dims, &mut |kb, ivs| {
        let (n, g, mm, o) = (ivs[0], ivs[1], ivs[2], &ivs[3..]);
        let (oc, acc) = output_channel_accumulator(kb, g, mm, mg, has_bias);
        kb.for_n(cg, &mut |kb, ci| {
            let gc = kb.b.ins().imul_imm_s(g, cg as i64);
            let cin = kb.b.ins().iadd(gc, ci);
            kb.nest(&ksz, &mut |kb, kivs| {
                let (pos, valid) = window_tap(kb, window, &in_sp, o, kivs);
                kb.if_then(valid, &mut |kb| {
                    let mut xi_ivs = vec![n, cin];
                    xi_ivs.extend(&pos);
                    let xi = kb.index(0, &xi_ivs, &xs);
                    let mut wi_ivs = vec![oc, ci];
                    wi_ivs.extend(kivs);
                    let wi = kb.index(0, &wi_ivs, &ws);
                    mac(kb, acc, xi, wi);
                });
            });
        });
        store_nc(kb, acc, n, oc, o, &os);
    });
    Ok(())
}

/// Output channel `g·mg + mm` of a grouped conv and an f32 accumulator
/// starting at its bias (operand 3) or 0.
fn output_channel_accumulator(
    kb: &mut Kb,
    g: Value,
    mm: Value,
    mg: usize,
    has_bias: bool,
) -> (Value, cranelift_frontend::Variable) {
    let gm = kb.b.ins().imul_imm_s(g, mg as i64);
    let oc = kb.b.ins().iadd(gm, mm);
    let init = if has_bias {
        let p = kb.arg(3);
        kb.load(DType::F32, p, oc)
    } else {
        kb.f32c(0.0)
    };
    (oc, kb.var(F32, init))
}

/// Transposed N-d convolution in gather form: output `o` sums, over input
/// channels of its group and kernel taps `k`, `x[t / stride] * w[c, m, k]`
/// where `t = o + pad_begin - k*dilation` is a non-negative multiple of the
/// stride with `t / stride` inside the input (per spatial dim).
pub(super) fn conv_transpose(
    kb: &mut Kb,
    node: &Node,
    args: &[&TensorType],
    window: &Window,
    group: usize,
) -> Result<(), String> {
    require_f32("conv_transpose", args)?;
    let (x, w) = (&args[0].shape, &args[1].shape);
    let has_bias = args.len() == 3;
    let (nb, c, mg) = (x.0[0], x.0[1], w.0[1]);
    let cg = c / group;
    let in_sp = x.0[2..].to_vec();
    let out_sp = node.ty.shape.0[2..].to_vec();
    let xs: Vec<i64> = x.strides().iter().map(|&s| s as i64).collect();
    let ws: Vec<i64> = w.strides().iter().map(|&s| s as i64).collect();
    let os = strides(&node.ty);
    let mut dims = vec![nb, group, mg];
    dims.extend(&out_sp);
    kb.nest(&dims, &mut |kb, ivs| {
        let (n, g, mm, o) = (ivs[0], ivs[1], ivs[2], &ivs[3..]);
        let (oc, acc) = output_channel_accumulator(kb, g, mm, mg, has_bias);
        kb.for_n(cg, &mut |kb, ci| {
            let gc = kb.b.ins().imul_imm_s(g, cg as i64);
            let cin = kb.b.ins().iadd(gc, ci);
            kb.nest(&window.kernel, &mut |kb, kivs| {
                let mut valid: Option<Value> = None;
                let mut pos = Vec::with_capacity(in_sp.len());
                for d in 0..in_sp.len() {
                    let (s, dil) = (window.strides[d] as i64, window.dilations[d] as i64);
                    let kd = kb.b.ins().imul_imm_s(kivs[d], dil);
                    let t = kb.b.ins().iadd_imm_s(o[d], window.pads_begin[d] as i64);
                    let t = kb.b.ins().isub(t, kd);
                    // q = t / s, exact and in range; a negative t gives a
                    // negative q (or a remainder), which the checks reject.
                    let (q, exact) = if s == 1 {
                        (t, None)
                    } else if (s as u64).is_power_of_two() {
                        let q = kb.b.ins().sshr_imm_s(t, s.trailing_zeros() as i64);
                        let r = kb.b.ins().band_imm_s(t, s - 1);
                        (q, Some(kb.b.ins().icmp_imm_s(IntCC::Equal, r, 0)))
                    } else {
                        let q = kb.b.ins().sdiv_imm_s(t, s);
                        let back = kb.b.ins().imul_imm_s(q, s);
                        (q, Some(kb.b.ins().icmp(IntCC::Equal, back, t)))
                    };
                    let mut ok = kb.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, q, in_sp[d] as i64);
                    if let Some(e) = exact {
                        ok = kb.b.ins().band(ok, e);
                    }
                    valid = Some(match valid {
                        None => ok,
                        Some(v) => kb.b.ins().band(v, ok),
                    });
                    pos.push(q);
                }
                let valid = valid.unwrap_or_else(|| kb.b.ins().iconst(I8, 1));
                kb.if_then(valid, &mut |kb| {
                    let mut xi_ivs = vec![n, cin];
                    xi_ivs.extend(&pos);
                    let xi = kb.index(0, &xi_ivs, &xs);
                    let mut wi_ivs = vec![cin, mm];
                    wi_ivs.extend(kivs);
                    let wi = kb.index(0, &wi_ivs, &ws);
                    mac(kb, acc, xi, wi);
                });
            });
        });
        store_nc(kb, acc, n, oc, o, &os);
    });
    Ok(())
}

/// `acc += x[xi] * w[wi]` (operands 1 and 2, f32): one tap of a convolution.
fn mac(kb: &mut Kb, acc: cranelift_frontend::Variable, xi: Value, wi: Value) {
    let (px, pw) = (kb.arg(1), kb.arg(2));
    let xv = kb.load(DType::F32, px, xi);
    let wv = kb.load(DType::F32, pw, wi);
    let p = kb.b.ins().fmul(xv, wv);
    let cur = kb.b.use_var(acc);
    let s = kb.b.ins().fadd(cur, p);
    kb.b.def_var(acc, s);
}

/// Stores `acc` to output element `[n, oc, o..]` (N, C, spatial layout).
fn store_nc(kb: &mut Kb, acc: cranelift_frontend::Variable, n: Value, oc: Value, o: &[Value], os: &[i64]) {
    let mut ivs = vec![n, oc];
    ivs.extend(o);
    let oi = kb.index(0, &ivs, os);
    let v = kb.b.use_var(acc);
    let out = kb.arg(0);
    kb.store(DType::F32, out, oi, v);
}
