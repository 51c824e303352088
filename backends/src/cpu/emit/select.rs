//! Scans and selections along one axis: cumsum, arg_max/arg_min and top_k.
//! One loop nest over the other dims ("lanes"), then loops along the axis
//! with register accumulators. Values order as in the interpreter: NaN
//! above every number and equal to NaN; equal values in index order.

use super::strides;
use crate::cpu::kernel::{Kb, reg_type};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, I64};
use cranelift_codegen::ir::{InstBuilder, Type, Value};
use nanoc_ir::{DType, Node, Shape, TensorType};

/// The dims other than `axis` and their strides in `t`.
fn lane_dims(t: &TensorType, axis: usize) -> (Vec<usize>, Vec<i64>) {
    let s = strides(t);
    let keep = |d: &usize| *d != axis;
    let dims = (0..t.shape.rank()).filter(keep).map(|d| t.shape.0[d]).collect();
    let st = (0..t.shape.rank()).filter(keep).map(|d| s[d]).collect();
    (dims, st)
}

/// The register type of a supported operand: f32, i32, i64, i8 or u8.
fn value_type(what: &str, t: &TensorType) -> Result<Type, String> {
    match reg_type(t.dtype) {
        Some(ty) if t.dtype != DType::Bool => Ok(ty),
        _ => Err(format!("{what} on {t} is not supported")),
    }
}

fn zero(kb: &mut Kb, ty: Type) -> Value {
    if ty == F32 { kb.f32c(0.0) } else { kb.b.ins().iconst(ty, 0) }
}

/// Comparisons of two loaded values of dtype `dt`.
struct Order {
    dt: DType,
}

impl Order {
    /// `a` ranks above `b` (NaN above every number).
    fn above(&self, kb: &mut Kb, a: Value, b: Value) -> Value {
        match self.dt {
            DType::F32 => {
                let gt = kb.b.ins().fcmp(FloatCC::GreaterThan, a, b);
                let a_nan = kb.b.ins().fcmp(FloatCC::Unordered, a, a);
                let b_num = kb.b.ins().fcmp(FloatCC::Ordered, b, b);
                let nan_over_num = kb.b.ins().band(a_nan, b_num);
                kb.b.ins().bor(gt, nan_over_num)
            }
            DType::U8 => kb.b.ins().icmp(IntCC::UnsignedGreaterThan, a, b),
            _ => kb.b.ins().icmp(IntCC::SignedGreaterThan, a, b),
        }
    }

    /// `a` and `b` are equal (NaN equals NaN).
    fn equal(&self, kb: &mut Kb, a: Value, b: Value) -> Value {
        if self.dt == DType::F32 {
            let eq = kb.b.ins().fcmp(FloatCC::Equal, a, b);
            let a_nan = kb.b.ins().fcmp(FloatCC::Unordered, a, a);
            let b_nan = kb.b.ins().fcmp(FloatCC::Unordered, b, b);
            let both = kb.b.ins().band(a_nan, b_nan);
            kb.b.ins().bor(eq, both)
        } else {
            kb.b.ins().icmp(IntCC::Equal, a, b)
        }
    }

    /// `(a, ia)` comes before `(b, ib)`: better (above when `largest`, else
    /// below), or equal with the lower index.
    #[allow(clippy::too_many_arguments)]
    fn before(&self, kb: &mut Kb, largest: bool, a: Value, ia: Value, b: Value, ib: Value) -> Value {
        let better = if largest { self.above(kb, a, b) } else { self.above(kb, b, a) };
        let eq = self.equal(kb, a, b);
        let lower = kb.b.ins().icmp(IntCC::SignedLessThan, ia, ib);
        let tie = kb.b.ins().band(eq, lower);
        kb.b.ins().bor(better, tie)
    }
}

/// Running sums along `axis` (same layout in and out).
pub(super) fn cumsum(
    kb: &mut Kb,
    args: &[&TensorType],
    axis: usize,
    exclusive: bool,
    reverse: bool,
) -> Result<(), String> {
    let x = args[0];
    let ty = value_type("cumsum", x)?;
    let dt = x.dtype;
    let (dims, lane_s) = lane_dims(x, axis);
    let (len, step) = (x.shape.0[axis], strides(x)[axis]);
    let (po, px) = (kb.arg(0), kb.arg(1));
    kb.nest(&dims, &mut |kb, ivs| {
        let base = kb.index(0, ivs, &lane_s);
        let z = zero(kb, ty);
        let acc = kb.var(ty, z);
        kb.for_n(len, &mut |kb, j| {
            let p = if reverse {
                let last = kb.i64c(len as i64 - 1);
                kb.b.ins().isub(last, j)
            } else {
                j
            };
            let off = kb.b.ins().imul_imm_s(p, step);
            let at = kb.b.ins().iadd(base, off);
            let v = kb.load(dt, px, at);
            let cur = kb.b.use_var(acc);
            let next = if dt == DType::F32 { kb.b.ins().fadd(cur, v) } else { kb.b.ins().iadd(cur, v) };
            kb.store(dt, po, at, if exclusive { cur } else { next });
            kb.b.def_var(acc, next);
        });
    });
    Ok(())
}

/// Index of the largest (`max`) or smallest element per lane: the first,
/// or the last with `select_last`.
pub(super) fn arg_reduce(
    kb: &mut Kb,
    args: &[&TensorType],
    max: bool,
    axis: usize,
    select_last: bool,
) -> Result<(), String> {
    let x = args[0];
    let ty = value_type(if max { "arg_max" } else { "arg_min" }, x)?;
    let dt = x.dtype;
    let (dims, lane_s) = lane_dims(x, axis);
    let out_s: Vec<i64> = Shape(dims.clone()).strides().iter().map(|&s| s as i64).collect();
    let (len, step) = (x.shape.0[axis], strides(x)[axis]);
    let order = Order { dt };
    let (po, px) = (kb.arg(0), kb.arg(1));
    kb.nest(&dims, &mut |kb, ivs| {
        let base = kb.index(0, ivs, &lane_s);
        let first = kb.load(dt, px, base);
        let best = kb.var(ty, first);
        let zero = kb.i64c(0);
        let best_i = kb.var(I64, zero);
        kb.for_n(len, &mut |kb, j| {
            let off = kb.b.ins().imul_imm_s(j, step);
            let at = kb.b.ins().iadd(base, off);
            let v = kb.load(dt, px, at);
            let (bv, bi) = (kb.b.use_var(best), kb.b.use_var(best_i));
            let mut wins = if max { order.above(kb, v, bv) } else { order.above(kb, bv, v) };
            if select_last {
                let eq = order.equal(kb, v, bv);
                wins = kb.b.ins().bor(wins, eq);
            }
            let nv = kb.b.ins().select(wins, v, bv);
            let ni = kb.b.ins().select(wins, j, bi);
            kb.b.def_var(best, nv);
            kb.b.def_var(best_i, ni);
        });
        let oi = kb.index(0, ivs, &out_s);
        let bi = kb.b.use_var(best_i);
        kb.store(DType::I64, po, oi, bi);
    });
    Ok(())
}

/// Indices of the `k` best elements per lane, best first. Output position
/// `r` holds the best element that comes after position `r - 1`'s in the
/// (value, index) order: `k` passes over the lane, no scratch memory.
pub(super) fn top_k(
    kb: &mut Kb,
    node: &Node,
    args: &[&TensorType],
    axis: usize,
    k: usize,
    largest: bool,
) -> Result<(), String> {
    let x = args[0];
    let ty = value_type("top_k", x)?;
    let dt = x.dtype;
    let (dims, lane_s) = lane_dims(x, axis);
    let (out_dims, out_lane_s) = lane_dims(&node.ty, axis);
    debug_assert_eq!(dims, out_dims);
    let (len, step, out_step) = (x.shape.0[axis], strides(x)[axis], strides(&node.ty)[axis]);
    let order = Order { dt };
    let (po, px) = (kb.arg(0), kb.arg(1));
    kb.nest(&dims, &mut |kb, ivs| {
        let base = kb.index(0, ivs, &lane_s);
        let out_base = kb.index(0, ivs, &out_lane_s);
        let z = zero(kb, ty);
        let none = kb.i64c(-1);
        let prev = kb.var(ty, z);
        let prev_i = kb.var(I64, none);
        kb.for_n(k, &mut |kb, r| {
            let best = kb.var(ty, z);
            let best_i = kb.var(I64, none);
            let (pv, pi) = (kb.b.use_var(prev), kb.b.use_var(prev_i));
            kb.for_n(len, &mut |kb, i| {
                let off = kb.b.ins().imul_imm_s(i, step);
                let at = kb.b.ins().iadd(base, off);
                let v = kb.load(dt, px, at);
                let first_pass = kb.b.ins().icmp_imm_s(IntCC::SignedLessThan, pi, 0);
                let after_prev = order.before(kb, largest, pv, pi, v, i);
                let after_prev = kb.b.ins().bor(first_pass, after_prev);
                let (bv, bi) = (kb.b.use_var(best), kb.b.use_var(best_i));
                let no_best = kb.b.ins().icmp_imm_s(IntCC::SignedLessThan, bi, 0);
                let beats = order.before(kb, largest, v, i, bv, bi);
                let beats = kb.b.ins().bor(no_best, beats);
                let take = kb.b.ins().band(after_prev, beats);
                let nv = kb.b.ins().select(take, v, bv);
                let ni = kb.b.ins().select(take, i, bi);
                kb.b.def_var(best, nv);
                kb.b.def_var(best_i, ni);
            });
            let (bv, bi) = (kb.b.use_var(best), kb.b.use_var(best_i));
            let off = kb.b.ins().imul_imm_s(r, out_step);
            let oi = kb.b.ins().iadd(out_base, off);
            kb.store(DType::I64, po, oi, bi);
            kb.b.def_var(prev, bv);
            kb.b.def_var(prev_i, bi);
        });
    });
    Ok(())
}
