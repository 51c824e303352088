//! Indexing and padding kernels: gather_elements, gather_nd, scatter_nd
//! and pad. Index operands are read at run time; an index outside
//! `[-n, n)` makes the kernel return status 1 before any access through it.
//! Copies move raw element bits, so every dtype works (scatter_nd's
//! reductions need a register dtype).

use super::strides;
use crate::cpu::kernel::{Kb, STATUS_INDEX_OUT_OF_RANGE, raw_type, reg_type};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value};
use nanoc_ir::{DType, Node, PadMode, ScatterReduction, Shape, TensorType};

/// Loads index element `at` (i32 or i64) of the buffer at `ptr` as an i64 in
/// `[0, dim)`: negative values count from the end; anything else out of
/// range returns status 1 from the kernel.
pub(super) fn load_index(kb: &mut Kb, it: DType, ptr: Value, at: Value, dim: usize) -> Value {
    let raw = kb.load(it, ptr, at);
    let j = if it == DType::I64 { raw } else { kb.b.ins().sextend(I64, raw) };
    let neg = kb.b.ins().icmp_imm_s(IntCC::SignedLessThan, j, 0);
    let wrapped = kb.b.ins().iadd_imm_s(j, dim as i64);
    let j = kb.b.ins().select(neg, wrapped, j);
    let bad = kb.b.ins().icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, j, dim as i64);
    kb.return_if(bad, STATUS_INDEX_OUT_OF_RANGE);
    j
}

/// Loads element `idx` of a `dt` buffer as raw bits.
fn load_raw(kb: &mut Kb, dt: DType, ptr: Value, idx: Value) -> Value {
    let a = kb.addr(ptr, idx, dt.size_bytes());
    kb.b.ins().load(raw_type(dt), MemFlagsData::trusted(), a, 0)
}

/// Stores raw bits `v` to element `idx` of a `dt` buffer.
fn store_raw(kb: &mut Kb, dt: DType, ptr: Value, idx: Value, v: Value) {
    let a = kb.addr(ptr, idx, dt.size_bytes());
    kb.b.ins().store(MemFlagsData::trusted(), v, a, 0);
}

fn index_operand(what: &str, t: &TensorType) -> Result<(), String> {
    if matches!(t.dtype, DType::I32 | DType::I64) {
        Ok(())
    } else {
        Err(format!("{what} indices {t} are not supported (i32 or i64 only)"))
    }
}

/// Row-major strides of `dims`, each times `scale`.
fn scaled_strides(dims: &[usize], scale: usize) -> Vec<i64> {
    Shape(dims.to_vec()).strides().iter().map(|&s| (s * scale) as i64).collect()
}

/// `out[p] = data[p with p[axis] := indices[p]]`.
pub(super) fn gather_elements(kb: &mut Kb, args: &[&TensorType], axis: usize) -> Result<(), String> {
    let (data, idx) = (args[0], args[1]);
    index_operand("gather_elements", idx)?;
    let (ds, is) = (strides(data), strides(idx));
    let (dt, it, dim) = (data.dtype, idx.dtype, data.shape.0[axis]);
    let (po, pd, pi) = (kb.arg(0), kb.arg(1), kb.arg(2));
    kb.nest(&idx.shape.0, &mut |kb, ivs| {
        // Indices and output share one shape, so one flat index serves both.
        let at = kb.index(0, ivs, &is);
        let j = load_index(kb, it, pi, at, dim);
        let mut d_ivs = ivs.to_vec();
        d_ivs[axis] = j;
        let di = kb.index(0, &d_ivs, &ds);
        kb.copy_elem(dt, pd, di, po, at);
    });
    Ok(())
}

/// The flat data offset of the index tuple that starts at element `first`
/// of the index buffer: `sum_i index_i * data_strides[dim0 + i]`, plus `base`.
#[allow(clippy::too_many_arguments)]
fn tuple_offset(
    kb: &mut Kb,
    it: DType,
    pi: Value,
    first: Value,
    m: usize,
    dims: &[usize],
    data_strides: &[i64],
    dim0: usize,
    base: Value,
) -> Value {
    let mut off = base;
    for i in 0..m {
        let at = kb.b.ins().iadd_imm_s(first, i as i64);
        let j = load_index(kb, it, pi, at, dims[dim0 + i]);
        let t = kb.b.ins().imul_imm_s(j, data_strides[dim0 + i]);
        off = kb.b.ins().iadd(off, t);
    }
    off
}

/// GatherND: per index tuple, one contiguous slice of data (the trailing
/// dims after the tuple's) copied to the output.
pub(super) fn gather_nd(kb: &mut Kb, args: &[&TensorType], batch_dims: usize) -> Result<(), String> {
    let (data, idx) = (args[0], args[1]);
    index_operand("gather_nd", idx)?;
    let (dd, id) = (data.shape.0.clone(), idx.shape.0.clone());
    let q = id.len();
    let m = id[q - 1];
    let slice: usize = dd[batch_dims + m..].iter().product();
    let ds = strides(data);
    let outer = &id[..q - 1];
    let (tuple_s, out_s) = (scaled_strides(outer, m), scaled_strides(outer, slice));
    let (dt, it) = (data.dtype, idx.dtype);
    let (po, pd, pi) = (kb.arg(0), kb.arg(1), kb.arg(2));
    kb.nest(outer, &mut |kb, ivs| {
        let batch = kb.index(0, &ivs[..batch_dims], &ds[..batch_dims]);
        let first = kb.index(0, ivs, &tuple_s);
        let base = tuple_offset(kb, it, pi, first, m, &dd, &ds, batch_dims, batch);
        let ob = kb.index(0, ivs, &out_s);
        kb.for_n(slice, &mut |kb, s| {
            let si = kb.b.ins().iadd(base, s);
            let oi = kb.b.ins().iadd(ob, s);
            kb.copy_elem(dt, pd, si, po, oi);
        });
    });
    Ok(())
}

/// ScatterND: copy data to the output, then apply the updates in order,
/// one contiguous slice per index tuple.
pub(super) fn scatter_nd(kb: &mut Kb, args: &[&TensorType], reduction: ScatterReduction) -> Result<(), String> {
    let (data, idx) = (args[0], args[1]);
    index_operand("scatter_nd", idx)?;
    let dt = data.dtype;
    if reduction != ScatterReduction::None && (reg_type(dt).is_none() || dt == DType::Bool) {
        return Err(format!("scatter_nd with a reduction on {data} is not supported"));
    }
    let (dd, id) = (data.shape.0.clone(), idx.shape.0.clone());
    let q = id.len();
    let m = id[q - 1];
    let slice: usize = dd[m..].iter().product();
    let ds = strides(data);
    let outer = &id[..q - 1];
    let (tuple_s, upd_s) = (scaled_strides(outer, m), scaled_strides(outer, slice));
    let it = idx.dtype;
    let (po, pd, pi, pu) = (kb.arg(0), kb.arg(1), kb.arg(2), kb.arg(3));
    kb.for_n(data.shape.numel(), &mut |kb, i| kb.copy_elem(dt, pd, i, po, i));
    kb.nest(outer, &mut |kb, ivs| {
        let first = kb.index(0, ivs, &tuple_s);
        let zero = kb.i64c(0);
        let base = tuple_offset(kb, it, pi, first, m, &dd, &ds, 0, zero);
        let ub = kb.index(0, ivs, &upd_s);
        kb.for_n(slice, &mut |kb, s| {
            let oi = kb.b.ins().iadd(base, s);
            let ui = kb.b.ins().iadd(ub, s);
            if reduction == ScatterReduction::None {
                kb.copy_elem(dt, pu, ui, po, oi);
                return;
            }
            let a = kb.load(dt, po, oi);
            let u = kb.load(dt, pu, ui);
            let unsigned = dt == DType::U8;
            let b = &mut kb.b;
            let r = match (reduction, dt == DType::F32) {
                (ScatterReduction::Add, true) => b.ins().fadd(a, u),
                (ScatterReduction::Mul, true) => b.ins().fmul(a, u),
                (ScatterReduction::Max, true) => b.ins().fmax(a, u),
                (ScatterReduction::Min, true) => b.ins().fmin(a, u),
                (ScatterReduction::Add, false) => b.ins().iadd(a, u),
                (ScatterReduction::Mul, false) => b.ins().imul(a, u),
                (ScatterReduction::Max, false) if unsigned => b.ins().umax(a, u),
                (ScatterReduction::Min, false) if unsigned => b.ins().umin(a, u),
                (ScatterReduction::Max, false) => b.ins().smax(a, u),
                (ScatterReduction::Min, false) => b.ins().smin(a, u),
                (ScatterReduction::None, _) => u,
            };
            kb.store(dt, po, oi, r);
        });
    });
    Ok(())
}

/// Pad: each output element reads the input at `o - begin` per dim, mapped
/// back inside by the mode; in constant mode, cells outside read the fill
/// value (operand 2, else zero bits) instead.
pub(super) fn pad(
    kb: &mut Kb,
    node: &Node,
    args: &[&TensorType],
    mode: PadMode,
    begin: &[usize],
) -> Result<(), String> {
    let x = args[0];
    let dt = x.dtype;
    let (xd, xs, os) = (x.shape.0.clone(), strides(x), strides(&node.ty));
    let has_value = args.len() == 2;
    let (po, px) = (kb.arg(0), kb.arg(1));
    let pv = if has_value { Some(kb.arg(2)) } else { None };
    let empty = x.shape.numel() == 0;
    kb.nest(&node.ty.shape.0, &mut |kb, ivs| {
        let oi = kb.index(0, ivs, &os);
        let fill = |kb: &mut Kb| match pv {
            Some(p) => {
                let z = kb.i64c(0);
                load_raw(kb, dt, p, z)
            }
            None => kb.b.ins().iconst(raw_type(dt), 0),
        };
        if empty {
            // Only constant mode can pad an empty tensor: all fill.
            let v = fill(kb);
            store_raw(kb, dt, po, oi, v);
            return;
        }
        let mut inside: Option<Value> = None;
        let mut src = Vec::with_capacity(ivs.len());
        for d in 0..ivs.len() {
            let n = xd[d] as i64;
            if begin[d] == 0 && node.ty.shape.0[d] == xd[d] {
                src.push(ivs[d]);
                continue;
            }
            let c = kb.b.ins().iadd_imm_s(ivs[d], -(begin[d] as i64));
            let b = &mut kb.b;
            let s = match mode {
                PadMode::Constant => {
                    let ok = b.ins().icmp_imm_s(IntCC::UnsignedLessThan, c, n);
                    inside = Some(match inside {
                        None => ok,
                        Some(v) => b.ins().band(v, ok),
                    });
                    // A safe address when outside; its value is not used.
                    let zero = b.ins().iconst(I64, 0);
                    b.ins().select(ok, c, zero)
                }
                PadMode::Edge => {
                    let zero = b.ins().iconst(I64, 0);
                    let last = b.ins().iconst(I64, n - 1);
                    let lo = b.ins().smax(c, zero);
                    b.ins().smin(lo, last)
                }
                PadMode::Reflect => {
                    let neg = b.ins().icmp_imm_s(IntCC::SignedLessThan, c, 0);
                    let over = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, c, n);
                    let mirrored_lo = b.ins().ineg(c);
                    let top = b.ins().iconst(I64, 2 * (n - 1));
                    let mirrored_hi = b.ins().isub(top, c);
                    let hi = b.ins().select(over, mirrored_hi, c);
                    b.ins().select(neg, mirrored_lo, hi)
                }
                PadMode::Wrap => {
                    let neg = b.ins().icmp_imm_s(IntCC::SignedLessThan, c, 0);
                    let over = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, c, n);
                    let up = b.ins().iadd_imm_s(c, n);
                    let down = b.ins().iadd_imm_s(c, -n);
                    let hi = b.ins().select(over, down, c);
                    b.ins().select(neg, up, hi)
                }
            };
            src.push(s);
        }
        let si = kb.index(0, &src, &xs);
        match inside {
            None => kb.copy_elem(dt, px, si, po, oi),
            Some(ok) => {
                let v = load_raw(kb, dt, px, si);
                let f = fill(kb);
                let r = kb.b.ins().select(ok, v, f);
                store_raw(kb, dt, po, oi, r);
            }
        }
    });
    Ok(())
}
