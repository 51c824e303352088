//! Elementwise kernels: one loop nest over the output, operands read with
//! broadcast strides, and a scalar function per element. A fused program
//! (`fused`, and the epilogue of `matmul_epilogue`) runs its steps in
//! registers, each step the same scalar code as its unfused kernel.

use super::strides;
use crate::cpu::kernel::{Kb, reg_type};
use crate::cpu::math;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::types::{F32, I8, I32, I64};
use cranelift_codegen::ir::{InstBuilder, Type, Value};
use nanoc_ir::{Arg, BinaryOp, DType, Node, Op, Program, TensorType, UnaryOp};

/// Kernel status for an integer division by zero.
const STATUS_DIV_BY_ZERO: i64 = 2;

pub(super) fn emit(kb: &mut Kb, node: &Node, args: &[&TensorType]) -> Result<(), String> {
    check(&node.op, &node.ty, args)?;
    let out = &node.ty;
    // Same-shape operands (and no index-dependent op): one flat loop.
    let flat = !matches!(node.op, Op::Trilu { .. });
    broadcast_loop(kb, out, args, flat, &mut |kb, vals, ivs| scalar(kb, &node.op, args, out.dtype, vals, ivs))
}

/// One loop nest over `out`'s elements: loads every operand (numpy
/// broadcasting), computes the element with `value` and stores it. With
/// `flat_ok` and operands of the output's shape it is one flat loop.
fn broadcast_loop(
    kb: &mut Kb,
    out: &TensorType,
    args: &[&TensorType],
    flat_ok: bool,
    value: &mut dyn FnMut(&mut Kb, &[Value], &[Value]) -> Result<Value, String>,
) -> Result<(), String> {
    let same = args.iter().all(|a| a.shape == out.shape);
    let (dims, arg_strides, out_strides): (Vec<usize>, Vec<Vec<i64>>, Vec<i64>) = if same && flat_ok {
        (vec![out.shape.numel()], vec![vec![1]; args.len()], vec![1])
    } else {
        let s = args
            .iter()
            .map(|a| a.shape.broadcast_strides(&out.shape).into_iter().map(|x| x as i64).collect())
            .collect();
        (out.shape.0.clone(), s, strides(out))
    };
    let mut result = Ok(());
    kb.nest(&dims, &mut |kb, ivs| {
        let vals: Vec<Value> = args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let idx = kb.index(0, ivs, &arg_strides[i]);
                let p = kb.arg(i + 1);
                kb.load(a.dtype, p, idx)
            })
            .collect();
        match value(kb, &vals, ivs) {
            Ok(v) => {
                let oi = kb.index(0, ivs, &out_strides);
                let o = kb.arg(0);
                kb.store(out.dtype, o, oi, v);
            }
            Err(e) => result = Err(e),
        }
    });
    result
}

/// A fused elementwise kernel: one loop nest over the output, each operand
/// loaded once per element, the steps computed in registers.
pub(super) fn fused(kb: &mut Kb, node: &Node, args: &[&TensorType], body: &Program) -> Result<(), String> {
    let step_types = body.step_types(args)?;
    check_program(body, &step_types, args)?;
    let out = &node.ty;
    broadcast_loop(kb, out, args, true, &mut |kb, vals, ivs| program_value(kb, body, &step_types, args, vals, ivs))
}

/// The type of a step argument.
fn arg_type<'a>(a: Arg, operands: &[&'a TensorType], step_types: &'a [TensorType]) -> &'a TensorType {
    match a {
        Arg::Operand(i) => operands[i],
        Arg::Step(i) => &step_types[i],
    }
}

/// Checks every step of `body` as its own kernel would be checked
/// (`step_types` from [`Program::step_types`], which validated the indices).
pub(super) fn check_program(body: &Program, step_types: &[TensorType], operands: &[&TensorType]) -> Result<(), String> {
    for (step, ty) in body.steps.iter().zip(step_types) {
        let tys: Vec<&TensorType> = step.args.iter().map(|&a| arg_type(a, operands, step_types)).collect();
        check(&step.op, ty, &tys)?;
    }
    Ok(())
}

/// The value of `body` at one element, from the operands' values `vals`
/// (after [`check_program`]).
pub(super) fn program_value(
    kb: &mut Kb,
    body: &Program,
    step_types: &[TensorType],
    operands: &[&TensorType],
    vals: &[Value],
    ivs: &[Value],
) -> Result<Value, String> {
    let mut results: Vec<Value> = Vec::with_capacity(body.steps.len());
    for (step, ty) in body.steps.iter().zip(step_types) {
        let tys: Vec<&TensorType> = step.args.iter().map(|&a| arg_type(a, operands, step_types)).collect();
        let vs: Vec<Value> = step
            .args
            .iter()
            .map(|&a| match a {
                Arg::Operand(i) => vals[i],
                Arg::Step(i) => results[i],
            })
            .collect();
        let v = scalar(kb, &step.op, &tys, ty.dtype, &vs, ivs)?;
        results.push(v);
    }
    results.last().copied().ok_or_else(|| "a fused program needs at least one step".into())
}

fn check(op: &Op, out: &TensorType, args: &[&TensorType]) -> Result<(), String> {
    let half = |d: DType| matches!(d, DType::F16 | DType::BF16);
    for t in args.iter().copied().chain([out]) {
        // Casts convert f16/bf16 (held as raw 16-bit integers) in software.
        if reg_type(t.dtype).is_none() && !(matches!(op, Op::Cast { .. }) && half(t.dtype)) {
            return Err(format!("{} on {t} is not supported", op.name()));
        }
    }
    let in_dt = args.first().map(|a| a.dtype).unwrap_or(DType::F32);
    let float_only =
        matches!(op, Op::Clip { .. } | Op::Binary(BinaryOp::Pow)) || matches!(op, Op::Unary(u) if !u.is_logical());
    if float_only && in_dt != DType::F32 {
        return Err(format!("{} on {in_dt} is not supported (f32 only)", op.name()));
    }
    Ok(())
}

fn scalar(kb: &mut Kb, op: &Op, args: &[&TensorType], out: DType, v: &[Value], ivs: &[Value]) -> Result<Value, String> {
    let b = &mut kb.b;
    Ok(match op {
        Op::Unary(u) => {
            let x = v[0];
            match u {
                UnaryOp::Neg => b.ins().fneg(x),
                UnaryOp::Sqrt => b.ins().sqrt(x),
                UnaryOp::Reciprocal => {
                    let one = b.ins().f32const(1.0);
                    b.ins().fdiv(one, x)
                }
                UnaryOp::Exp => math::exp(b, x),
                UnaryOp::Log => math::log(b, x),
                UnaryOp::Erf => math::erf(b, x),
                UnaryOp::Tanh => math::tanh(b, x),
                UnaryOp::Sigmoid => math::sigmoid(b, x),
                UnaryOp::Relu => {
                    let z = b.ins().f32const(0.0);
                    b.ins().fmax(x, z)
                }
                UnaryOp::Gelu => math::gelu(b, x),
                UnaryOp::GeluTanh => math::gelu_tanh(b, x),
                UnaryOp::Abs => b.ins().fabs(x),
                UnaryOp::Sign => math::sign(b, x),
                UnaryOp::Floor => math::floor(b, x),
                UnaryOp::Ceil => math::ceil(b, x),
                UnaryOp::Round => math::round_half_even(b, x),
                UnaryOp::Softplus => math::softplus(b, x),
                UnaryOp::Silu => {
                    let s = math::sigmoid(b, x);
                    b.ins().fmul(x, s)
                }
                UnaryOp::Not => b.ins().icmp_imm_s(IntCC::Equal, x, 0),
            }
        }
        Op::Clip { min, max } => {
            let lo = b.ins().f32const(*min);
            let hi = b.ins().f32const(*max);
            let t = b.ins().fmax(v[0], lo);
            b.ins().fmin(t, hi)
        }
        Op::Binary(op) => binary(kb, *op, args[0].dtype, v[0], v[1]),
        Op::Cast { to } => cast(kb, args[0].dtype, *to, v[0]),
        Op::Where => b.ins().select(v[0], v[1], v[2]),
        Op::Trilu { upper, k } => {
            let r = ivs.len();
            let d = b.ins().isub(ivs[r - 1], ivs[r - 2]);
            let cc = if *upper { IntCC::SignedGreaterThanOrEqual } else { IntCC::SignedLessThanOrEqual };
            let keep = b.ins().icmp_imm_s(cc, d, *k);
            let zero = zero_of(kb, out);
            kb.b.ins().select(keep, v[0], zero)
        }
        other => return Err(format!("{} is not elementwise", other.name())),
    })
}

fn zero_of(kb: &mut Kb, dt: DType) -> Value {
    match reg_type(dt) {
        Some(F32) => kb.b.ins().f32const(0.0),
        Some(t) => kb.b.ins().iconst(t, 0),
        None => kb.b.ins().iconst(I8, 0),
    }
}

fn binary(kb: &mut Kb, op: BinaryOp, dt: DType, a: Value, c: Value) -> Value {
    let b = &mut kb.b;
    if dt == DType::F32 {
        return match op {
            BinaryOp::Add => b.ins().fadd(a, c),
            BinaryOp::Sub => b.ins().fsub(a, c),
            BinaryOp::Mul => b.ins().fmul(a, c),
            BinaryOp::Div => b.ins().fdiv(a, c),
            BinaryOp::Pow => math::pow(b, a, c),
            BinaryOp::Min => b.ins().fmin(a, c),
            BinaryOp::Max => b.ins().fmax(a, c),
            BinaryOp::Rem => math::frem(b, a, c),
            BinaryOp::Mod => math::fmod_floored(b, a, c),
            BinaryOp::Equal => b.ins().fcmp(FloatCC::Equal, a, c),
            BinaryOp::Less => b.ins().fcmp(FloatCC::LessThan, a, c),
            BinaryOp::Greater => b.ins().fcmp(FloatCC::GreaterThan, a, c),
            BinaryOp::LessEqual => b.ins().fcmp(FloatCC::LessThanOrEqual, a, c),
            BinaryOp::GreaterEqual => b.ins().fcmp(FloatCC::GreaterThanOrEqual, a, c),
            // Rejected by type inference (bool operands only).
            BinaryOp::And | BinaryOp::Or => a,
        };
    }
    let unsigned = matches!(dt, DType::U8 | DType::Bool);
    let cc = |signed: IntCC, unsigned_cc: IntCC| if unsigned { unsigned_cc } else { signed };
    match op {
        BinaryOp::Add => b.ins().iadd(a, c),
        BinaryOp::Sub => b.ins().isub(a, c),
        BinaryOp::Mul => b.ins().imul(a, c),
        BinaryOp::Min if unsigned => b.ins().umin(a, c),
        BinaryOp::Min => b.ins().smin(a, c),
        BinaryOp::Max if unsigned => b.ins().umax(a, c),
        BinaryOp::Max => b.ins().smax(a, c),
        BinaryOp::Equal => b.ins().icmp(IntCC::Equal, a, c),
        BinaryOp::Less => b.ins().icmp(cc(IntCC::SignedLessThan, IntCC::UnsignedLessThan), a, c),
        BinaryOp::Greater => b.ins().icmp(cc(IntCC::SignedGreaterThan, IntCC::UnsignedGreaterThan), a, c),
        BinaryOp::LessEqual => b.ins().icmp(cc(IntCC::SignedLessThanOrEqual, IntCC::UnsignedLessThanOrEqual), a, c),
        BinaryOp::GreaterEqual => {
            b.ins().icmp(cc(IntCC::SignedGreaterThanOrEqual, IntCC::UnsignedGreaterThanOrEqual), a, c)
        }
        BinaryOp::And => b.ins().band(a, c),
        BinaryOp::Or => b.ins().bor(a, c),
        BinaryOp::Div => int_div(kb, dt, a, c),
        BinaryOp::Rem => int_rem(kb, dt, a, c, false),
        BinaryOp::Mod => int_rem(kb, dt, a, c, true),
        // Rejected by `check`.
        BinaryOp::Pow => a,
    }
}

/// Integer remainder without trapping: truncated (sign of the dividend),
/// or floored (sign of the divisor) when `floored`. A zero divisor returns
/// a kernel status.
fn int_rem(kb: &mut Kb, dt: DType, a: Value, c: Value, floored: bool) -> Value {
    let is_zero = kb.b.ins().icmp_imm_s(IntCC::Equal, c, 0);
    kb.return_if(is_zero, STATUS_DIV_BY_ZERO);
    let b = &mut kb.b;
    if dt == DType::U8 || dt == DType::Bool {
        return b.ins().urem(a, c);
    }
    let ty = b.func.dfg.value_type(a);
    // x % -1 is 0; avoid the MIN % -1 overflow case.
    let minus1 = b.ins().icmp_imm_s(IntCC::Equal, c, -1);
    let one = b.ins().iconst(ty, 1);
    let safe = b.ins().select(minus1, one, c);
    let r = b.ins().srem(a, safe);
    if !floored {
        return r;
    }
    let nonzero = b.ins().icmp_imm_s(IntCC::NotEqual, r, 0);
    let x = b.ins().bxor(r, c);
    let differ = b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
    let fix = b.ins().band(nonzero, differ);
    let rc = b.ins().iadd(r, c);
    b.ins().select(fix, rc, r)
}

/// Integer division truncating toward zero, without trapping: a zero
/// divisor returns a kernel status, `MIN / -1` wraps.
fn int_div(kb: &mut Kb, dt: DType, a: Value, c: Value) -> Value {
    let is_zero = kb.b.ins().icmp_imm_s(IntCC::Equal, c, 0);
    kb.return_if(is_zero, STATUS_DIV_BY_ZERO);
    let b = &mut kb.b;
    let ty = b.func.dfg.value_type(a);
    if dt == DType::U8 || dt == DType::Bool {
        return b.ins().udiv(a, c);
    }
    let minus1 = b.ins().icmp_imm_s(IntCC::Equal, c, -1);
    let one = b.ins().iconst(ty, 1);
    let safe = b.ins().select(minus1, one, c);
    let q = b.ins().sdiv(a, safe);
    let na = b.ins().ineg(a);
    b.ins().select(minus1, na, q)
}

fn cast(kb: &mut Kb, from: DType, to: DType, x: Value) -> Value {
    // Half types go through f32 (their raw bits are held as i16).
    match from {
        DType::F16 => {
            let f = math::f16_to_f32(&mut kb.b, x);
            return cast(kb, DType::F32, to, f);
        }
        DType::BF16 => {
            let f = math::bf16_to_f32(&mut kb.b, x);
            return cast(kb, DType::F32, to, f);
        }
        _ => {}
    }
    match to {
        DType::F16 => {
            let f = cast(kb, from, DType::F32, x);
            return math::f32_to_f16(&mut kb.b, f);
        }
        DType::BF16 => {
            let f = cast(kb, from, DType::F32, x);
            return math::f32_to_bf16(&mut kb.b, f);
        }
        _ => {}
    }
    let b = &mut kb.b;
    let signed = |d: DType| !matches!(d, DType::U8 | DType::Bool);
    let to_ty: Type = reg_type(to).unwrap_or(I8);
    let from_ty: Type = reg_type(from).unwrap_or(I8);
    match (from == DType::F32, to == DType::F32) {
        (true, true) => x,
        (false, true) => {
            if signed(from) {
                b.ins().fcvt_from_sint(F32, x)
            } else {
                b.ins().fcvt_from_uint(F32, x)
            }
        }
        (true, false) => {
            if to == DType::Bool {
                let z = b.ins().f32const(0.0);
                b.ins().fcmp(FloatCC::NotEqual, x, z)
            } else if to == DType::U8 {
                // Through i32 so 255.0 stays 255 (then wraps like a C cast of the integer part).
                let i = b.ins().fcvt_to_sint_sat(I32, x);
                b.ins().ireduce(I8, i)
            } else {
                b.ins().fcvt_to_sint_sat(to_ty, x)
            }
        }
        (false, false) => {
            if to == DType::Bool {
                return b.ins().icmp_imm_s(IntCC::NotEqual, x, 0);
            }
            let (fb, tb) = (from_ty.bits(), to_ty.bits());
            if fb == tb {
                x
            } else if fb > tb {
                b.ins().ireduce(to_ty, x)
            } else if signed(from) {
                b.ins().sextend(to_ty, x)
            } else {
                b.ins().uextend(to_ty, x)
            }
        }
    }
}

#[allow(dead_code)]
const _: Type = I64;
